"""The site's URLs plus views that fail on purpose, for the error page tests."""

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.urls import path

from quietcast import urls as site


def refuses(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("Not yours.")


def rejects(request: HttpRequest) -> HttpResponse:
    raise SuspiciousOperation("Malformed.")


def fails(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("A bug.")


handler400 = site.handler400
handler403 = site.handler403
handler404 = site.handler404
handler500 = site.handler500

urlpatterns = [
    path("broken/refuses/", refuses),
    path("broken/rejects/", rejects),
    path("broken/fails/", fails),
    path("api/broken/fails/", fails),
    *site.urlpatterns,
]
