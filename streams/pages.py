"""Server-rendered pages that show friends together with their live streams (friends knows nothing of streams)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from friends import services as friends
from streams import services


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    people = list(friends.friends_of(request.user))
    live = services.live_user_ids([friend.pk for friend in people])
    return render(request, "friends/home.html", {"friends": people, "live_ids": live})


@login_required
@require_GET
def profile(request: HttpRequest, username: str) -> HttpResponse:
    """A person's page. Their stream and recordings are shown only to them and their friends."""
    try:
        owner = friends.find_user(username)
    except friends.UserNotFound as error:
        raise Http404(str(error)) from error
    allowed = friends.can_access(request.user, owner)
    context = {
        "owner": owner,
        "is_owner": owner.pk == request.user.pk,
        "friendship": "self" if owner.pk == request.user.pk else friends.friendship_state(request.user, owner),
        "allowed": allowed,
    }
    if allowed:
        context.update(services.profile_context(request.user, owner))
    return render(request, "friends/profile.html", context)
