"""The stream lifecycle and recordings: the only code that starts or ends a stream.

Every way a stream can end (the Stop button, `sendBeacon` on page unload, the broadcaster's presence socket
staying closed past the grace period, the WebRTC connection dropping, server start after a crash) calls
`end_stream`, which removes the ActiveStream, finalizes the recording and tells friends.
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from friends.services import friend_ids
from streams import events, media
from streams.models import ActiveStream, PresenceConnection, StreamRecording

logger = logging.getLogger(__name__)
User = get_user_model()


class StreamError(Exception):
    """A lifecycle operation that cannot be done; the message is shown to the person who asked."""


class AlreadyLive(StreamError):
    def __init__(self, stream: ActiveStream) -> None:
        super().__init__("You are already live. Stop the current stream first.")
        self.stream = stream


class DenoiseAtCapacity(StreamError):
    def __init__(self) -> None:
        super().__init__(
            "Noise removal is at capacity on this server. Go live without denoise, or try again in a few minutes."
        )


class NotLive(StreamError):
    def __init__(self) -> None:
        super().__init__("No active stream")


@dataclass(frozen=True)
class EndedStream:
    owner_id: int
    session_id: uuid.UUID
    recording: StreamRecording | None


def live_user_ids(user_ids: Iterable[int]) -> set[int]:
    return set(ActiveStream.objects.filter(owner_id__in=list(user_ids)).values_list("owner_id", flat=True))


def live_friend_usernames(user: AbstractBaseUser) -> list[str]:
    return sorted(ActiveStream.objects.filter(owner_id__in=friend_ids(user)).values_list("owner__username", flat=True))


def active_stream_of(user: AbstractBaseUser) -> ActiveStream | None:
    return ActiveStream.objects.filter(owner=user).first()


def start_stream(user: AbstractBaseUser, denoise: bool = True) -> ActiveStream:
    """Go live. Two concurrent starts by one user (two tabs) leave exactly one stream: the loser gets AlreadyLive.

    Denoised streams beyond MAX_DENOISED_STREAMS, or beyond what the denoise workers measure they can take, are
    refused (DenoiseAtCapacity). The count is not locked, so two simultaneous starts may pass it by one: a soft
    limit is enough, as a worker that falls behind passes whole streams through rather than garbling them.
    """
    limit = settings.MAX_DENOISED_STREAMS
    if denoise and (
        (limit and ActiveStream.objects.filter(denoise_enabled=True).count() >= limit) or media.denoise_headroom() == 0
    ):
        existing = active_stream_of(user)
        if existing is not None:
            raise AlreadyLive(existing)
        raise DenoiseAtCapacity()
    try:
        with transaction.atomic():
            stream = ActiveStream.objects.create(owner=user, denoise_enabled=denoise)
    except IntegrityError:
        existing = active_stream_of(user)
        if existing is None:  # ended between our insert and this read; a retry is the honest answer
            raise StreamError("Your previous stream was just ending. Try again.") from None
        raise AlreadyLive(existing) from None
    logger.info("stream started: user=%s session=%s denoise=%s", user.username, stream.session_id, denoise)
    events.tell_friends(
        friend_ids(user), {"type": events.STATUS_CHANGED, "username": user.username, "is_streaming": True}
    )
    return stream


def end_stream(user: AbstractBaseUser, *, reason: str, session_id: uuid.UUID | str | None = None) -> EndedStream:
    """End `user`'s stream, whatever the reason. With `session_id`, only that session (a stale trigger from an
    older stream must not end a newer one). Raises NotLive when there is nothing to end."""
    with transaction.atomic():
        streams = ActiveStream.objects.select_for_update().filter(owner=user)
        if session_id is not None:
            streams = streams.filter(session_id=session_id)
        stream = streams.first()
        if stream is None:
            raise NotLive()
        stream.delete()
    logger.info("stream ended: user=%s session=%s reason=%s", user.username, stream.session_id, reason)

    finished = media.finish(stream.session_id, owner_id=user.pk)
    recording = None
    if finished is not None and finished.duration > 0:
        recording = _register_recording(user, stream.session_id, finished, stream.denoise_enabled, stream.started_at)

    owner_friends = friend_ids(user)
    events.tell_friends(
        owner_friends, {"type": events.STATUS_CHANGED, "username": user.username, "is_streaming": False}
    )
    events.tell_stream_watchers(user.pk, {"type": events.STREAM_ENDED})
    if recording is not None:
        events.tell_friends(
            owner_friends | {user.pk},
            {"type": events.RECORDING_SAVED, "username": user.username, "recording": recording_as_json(recording)},
        )
    return EndedStream(owner_id=user.pk, session_id=stream.session_id, recording=recording)


def end_stream_session(session_id: uuid.UUID | str, *, reason: str) -> EndedStream | None:
    """End a stream known only by its session id (media callbacks). Quietly nothing if it already ended."""
    stream = ActiveStream.objects.select_related("owner").filter(session_id=session_id).first()
    if stream is None:
        return None
    try:
        return end_stream(stream.owner, reason=reason, session_id=session_id)
    except NotLive:
        return None


def _register_recording(
    user: AbstractBaseUser,
    session_id: uuid.UUID,
    finished: "media.FinishedRecording",
    denoise: bool,
    started_at: datetime | None,
) -> StreamRecording:
    """Save a finished stream's recording, titled by when it started (unknown only for a file orphaned
    without its stream row: then by when it was found)."""
    started = timezone.localtime(started_at or timezone.now())
    recording, _ = StreamRecording.objects.get_or_create(
        session_id=session_id,
        defaults={
            "owner": user,
            "title": f"Live on {started:%Y-%m-%d %H:%M}",
            "audio_path": finished.relative_path,
            "duration": finished.duration,
            "denoise_enabled": denoise,
        },
    )
    return recording


def recording_as_json(recording: StreamRecording) -> dict[str, Any]:
    return {
        "id": recording.pk,
        "title": recording.title,
        "description": recording.description,
        "duration": round(recording.duration, 3),
        "created_at": recording.created_at.isoformat(),
        "denoise_enabled": recording.denoise_enabled,
        "url": reverse("recording_audio", args=[recording.pk]),
    }


def recordings_of(owner: AbstractBaseUser) -> list[StreamRecording]:
    return list(StreamRecording.objects.filter(owner=owner))


def stream_status(owner: AbstractBaseUser) -> dict[str, Any]:
    stream = active_stream_of(owner)
    return {
        "username": owner.username,
        "is_streaming": stream is not None,
        "session_id": str(stream.session_id) if stream else None,
        "started_at": stream.started_at.isoformat() if stream else None,
        "denoise": stream.denoise_enabled if stream else None,
        "listeners": stream.listener_count if stream else 0,
    }


def set_listener_count(session_id: uuid.UUID | str, count: int) -> None:
    """Record a stream's listener count (from the media engine) and tell whoever watches the stream."""
    stream = ActiveStream.objects.filter(session_id=session_id).first()
    if stream is None:
        return
    previous = stream.listener_count
    ActiveStream.objects.filter(pk=stream.pk).update(listener_count=count)
    if count != previous:
        kind = "listener_joined" if count > previous else "listener_left"
        events.tell_stream_watchers(stream.owner_id, {"type": events.LISTENERS_CHANGED, "event": kind, "count": count})


def on_friendship_changed(user_a: AbstractBaseUser, user_b: AbstractBaseUser, are_friends: bool, **_) -> None:
    """A new friend sees a live stream at once; an unfriended person stops seeing, watching and hearing it."""
    for owner, viewer in ((user_a, user_b), (user_b, user_a)):
        stream = active_stream_of(owner)
        if stream is not None:
            events.tell_friends(
                [viewer.pk], {"type": events.STATUS_CHANGED, "username": owner.username, "is_streaming": are_friends}
            )
            if not are_friends:
                media.disconnect_listener(stream.session_id, viewer.pk)
        if not are_friends:
            events.revoke_stream_access(viewer_id=viewer.pk, owner_id=owner.pk)


# --- presence sockets and the reconnect grace period --------------------------------------------------------


def presence_connected(user: AbstractBaseUser, channel_name: str) -> None:
    PresenceConnection.objects.get_or_create(channel_name=channel_name, defaults={"user": user})
    ActiveStream.objects.filter(owner=user, presence_lost_at__isnull=False).update(presence_lost_at=None)


@dataclass(frozen=True)
class PresenceLoss:
    session_id: uuid.UUID
    lost_at: datetime


def presence_disconnected(user: AbstractBaseUser, channel_name: str) -> PresenceLoss | None:
    """Forget one presence socket. When a live user has none left, returns what `end_if_abandoned` needs."""
    PresenceConnection.objects.filter(channel_name=channel_name).delete()
    if PresenceConnection.objects.filter(user=user).exists():
        return None
    lost_at = timezone.now()
    stream = active_stream_of(user)
    if stream is None or not ActiveStream.objects.filter(pk=stream.pk).update(presence_lost_at=lost_at):
        return None
    return PresenceLoss(session_id=stream.session_id, lost_at=lost_at)


def end_if_abandoned(user_id: int, loss: PresenceLoss) -> EndedStream | None:
    """After the grace period: end the stream unless the broadcaster came back (a reload reconnects) or left
    again later (then the later loss's timer decides)."""
    still_lost = ActiveStream.objects.filter(
        owner_id=user_id, session_id=loss.session_id, presence_lost_at=loss.lost_at
    )
    if not still_lost.exists():
        return None
    return end_stream_session(loss.session_id, reason="presence socket closed")


def recover_after_restart() -> list[EndedStream]:
    """On server start: streams left live by a crashed or killed run are ended like any other, their partial
    recordings repaired and saved; then recordings orphaned without a stream row are registered too."""
    PresenceConnection.objects.all().delete()
    left_live = ActiveStream.objects.values_list("session_id", flat=True)
    ended = [end_stream_session(session_id, reason="server restarted") for session_id in left_live]
    ended = [stream for stream in ended if stream is not None]
    for orphan in media.orphaned_recordings():
        owner = User.objects.filter(pk=orphan.owner_id).first()
        if owner is None or StreamRecording.objects.filter(session_id=orphan.session_id).exists():
            continue
        finished = media.repair(orphan)
        if finished is not None and finished.duration > 0:
            _register_recording(owner, orphan.session_id, finished, denoise=True, started_at=None)
    return ended


def profile_context(viewer: AbstractBaseUser, owner: AbstractBaseUser) -> dict:
    """What a person's page shows to someone allowed to see it (see friends.services.can_access)."""
    return {"active_stream": active_stream_of(owner), "recordings": recordings_of(owner)}
