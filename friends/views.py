"""Server-rendered friend pages. Actions are plain form POSTs that call the same services as the API."""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.users import signed_in
from friends import services

# Each action: the service that does it (it returns its outcome, or (outcome, created)), and what each outcome
# tells the person.
FriendAction = Callable[[User, str], str | tuple[str, bool]]
FRIEND_ACTIONS: dict[str, tuple[FriendAction, dict[str, str]]] = {
    "request": (
        services.send_request,
        {
            "pending": "Friend request sent to {name}.",
            "accepted": "You and {name} are now friends.",
            "friends": "You and {name} are already friends.",
        },
    ),
    "accept": (services.accept_request, {"accepted": "You and {name} are now friends."}),
    "reject": (services.reject_request, {"rejected": "Request from {name} declined."}),
    "cancel": (services.cancel_request, {"cancelled": "Request to {name} cancelled."}),
    "remove": (services.remove_friend, {"removed": "{name} is no longer your friend."}),
}


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:150]
    results = services.search_users(signed_in(request), query) if query.strip() else []
    return render(request, "friends/search.html", {"query": query, "results": results})


@login_required
@require_GET
def friend_requests(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    return render(
        request,
        "friends/requests.html",
        {"received": services.received_requests(user), "sent": services.sent_requests(user)},
    )


@login_required
@require_POST
def friend_action(request: HttpRequest, action: str) -> HttpResponse:
    username = request.POST.get("username", "").strip()
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "friend_requests"
    if action not in FRIEND_ACTIONS or not username:
        messages.error(request, "That friend action is not possible.")
        return redirect(next_url)
    operation, confirmations = FRIEND_ACTIONS[action]
    try:
        outcome = operation(signed_in(request), username)
    except services.FriendshipError as error:
        messages.error(request, str(error))
        return redirect(next_url)
    status = outcome[0] if isinstance(outcome, tuple) else outcome
    messages.success(request, confirmations[status].format(name=username))
    return redirect(next_url)
