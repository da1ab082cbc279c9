"""What a refused or failed request is answered: a page in the site's layout with a way back, or, under /api/,
the API's usual `{"error": "..."}`.

Pages never say more than the access rule allows: a recording or a person's page that exists but is not shared
with the viewer answers the same 404 as one that does not exist.
"""

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader


@dataclass(frozen=True)
class ErrorPage:
    status: int
    title: str
    explanation: str
    api_error: str


NOT_FOUND = ErrorPage(
    404,
    "Nothing here",
    "This page does not exist, or it is not shared with you: a person's streams and recordings are shown only "
    "to them and their friends.",
    "Not found.",
)
FORBIDDEN = ErrorPage(403, "Not for you", "You are not allowed to open this page.", "You may not do that.")
BAD_REQUEST = ErrorPage(
    400, "That request did not make sense", "The address or the form sent was not understood.", "Bad request."
)
# A stale form (the page was open from before logging in or out) or a browser that refuses cookies.
CSRF_FAILED = ErrorPage(
    403,
    "This form has expired",
    "The page you sent it from was out of date, or your browser did not send this site's cookie. Go back, reload "
    "the page and send the form again; if it keeps happening, allow cookies for this site.",
    "The form's security token is missing or out of date: reload the page and try again.",
)
SERVER_ERROR = ErrorPage(
    500,
    "Something went wrong on our side",
    "The server failed to answer this request. It has been logged; try again in a moment.",
    "The server failed to answer this request.",
)

TEMPLATE = "errors/error_page.html"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _answer(request: HttpRequest, page: ErrorPage) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": page.api_error}, status=page.status)
    return render(request, TEMPLATE, {"page": page}, status=page.status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, BAD_REQUEST)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, FORBIDDEN)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, NOT_FOUND)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _answer(request, CSRF_FAILED)


def server_error(request: HttpRequest) -> HttpResponse:
    """Rendered from the template alone: no request context, so no context processor, session or database query
    runs, any of which may be what failed."""
    if _is_api(request):
        return JsonResponse({"error": SERVER_ERROR.api_error}, status=500)
    return HttpResponse(loader.get_template(TEMPLATE).render({"page": SERVER_ERROR}), status=500)
