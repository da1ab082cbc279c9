"""Stream lifecycle and recordings."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser

from streams.models import ActiveStream, StreamRecording


def live_user_ids(user_ids: Iterable[int]) -> set[int]:
    return set(ActiveStream.objects.filter(owner_id__in=list(user_ids)).values_list("owner_id", flat=True))


def profile_context(viewer: AbstractBaseUser, owner: AbstractBaseUser) -> dict:
    """What a person's page shows to someone allowed to see it (see friends.services.can_access)."""
    return {
        "active_stream": ActiveStream.objects.filter(owner=owner).first(),
        "recordings": StreamRecording.objects.filter(owner=owner),
    }
