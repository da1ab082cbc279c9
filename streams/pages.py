"""Server-rendered pages that show friends together with their live streams (friends knows nothing of streams)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.users import signed_in
from friends import services as friends
from streams import recordings, services


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Home for a signed-in person; for anyone else, the landing page that says what Quietcast is."""
    if not request.user.is_authenticated:
        return render(request, "landing.html")
    people = list(friends.friends_of(signed_in(request)))
    live = services.live_user_ids([friend.pk for friend in people])
    return render(request, "friends/home.html", {"friends": people, "live_ids": live})


@login_required
@require_GET
def profile(request: HttpRequest, username: str) -> HttpResponse:
    """A person's page. Their stream and recordings are shown only to them and their friends."""
    viewer = signed_in(request)
    try:
        owner = friends.find_user(username)
    except friends.UserNotFound as error:
        raise Http404(str(error)) from error
    allowed = friends.can_access(viewer, owner)
    context = {
        "owner": owner,
        "is_owner": owner.pk == viewer.pk,
        "friendship": "self" if owner.pk == viewer.pk else friends.friendship_state(viewer, owner),
        "allowed": allowed,
    }
    if allowed:
        context.update(services.profile_context(viewer, owner))
        first_page = recordings.page_of_recordings(owner)
        context.update(recordings=first_page.recordings, more_recordings=first_page.more)
    return render(request, "friends/profile.html", context)
