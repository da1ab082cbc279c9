"""The stream lifecycle and recordings: the only code that starts or ends a stream.

Every way a stream can end (the Stop button, leaving My page for another page, logging out, the broadcaster's
page or media staying away past the grace period (a short one when the page closed itself), no audio in time,
server start after a crash or shutdown) calls `end_stream`, which removes the ActiveStream, finalizes the
recording and tells friends and the owner's pages.

Grace: one mechanism. Database markers on the live row say since when the broadcaster's presence or media is
missing (`presence_lost_at`, `publisher_lost_at`) and whether audio ever arrived (`audio_started_at`);
`end_overdue_streams`, run every second by streams.deadlines, ends what has been away or silent too long by
the time `streams.clock.now()` reads.
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone

from friends.services import can_access, friend_ids, received_requests
from streams import clock, events, hosts, media, placement
from streams.events import EndReason
from streams.models import ActiveStream, PresenceConnection, StreamRecording

logger = logging.getLogger(__name__)


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


class DenoiseSwitchAtCapacity(DenoiseAtCapacity):
    def __init__(self) -> None:
        StreamError.__init__(
            self, "Noise removal is at capacity on this server; your stream goes on without it. Try again later."
        )


class RecordingQuotaFull(StreamError):
    def __init__(self, used_mb: float, quota_mb: float) -> None:
        super().__init__(
            f"Your recordings use {used_mb:,.0f} MB of your {quota_mb:,.0f} MB. "
            "Delete some recordings to go live again."
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


def live_friend_usernames(user: User) -> list[str]:
    return sorted(ActiveStream.objects.filter(owner_id__in=friend_ids(user)).values_list("owner__username", flat=True))


def active_stream_of(user: User) -> ActiveStream | None:
    return ActiveStream.objects.filter(owner=user).first()


def recorded_megabytes(user: User) -> float:
    """Audio the person keeps, from the recordings' durations (the files are fixed-rate WAV)."""
    seconds = StreamRecording.objects.filter(owner=user).aggregate(total=Sum("duration"))["total"] or 0.0
    return seconds * media.RECORDING_BYTES_PER_SECOND / 1e6


def _require_recording_space(user: User) -> None:
    quota = settings.RECORDINGS_QUOTA_MB
    if quota and (used := recorded_megabytes(user)) >= quota:
        raise RecordingQuotaFull(used, quota)


def _host_loads(other_streams: "QuerySet[ActiveStream]", host_ids: Iterable[str]) -> list[placement.HostLoad]:
    """Each host's denoised streams among `other_streams` (a row with no host counts as this process's), and its
    headroom: measured now for this process, from its last heartbeat for the others."""
    here = media.host_id()
    counted = other_streams.filter(denoise_enabled=True).values_list("media_host").annotate(count=Count("pk"))
    denoised: dict[str, int] = {}
    for host_id, count in counted:
        denoised[host_id or here] = denoised.get(host_id or here, 0) + count
    host_ids = list(host_ids)
    heard = {}
    if any(host_id != here for host_id in host_ids):
        heard = {host.host_id: host.denoise_headroom for host in hosts.live_hosts(here)}
    return [
        placement.HostLoad(
            host_id,
            denoised.get(host_id, 0),
            media.denoise_headroom() if host_id == here else heard.get(host_id),
        )
        for host_id in host_ids
    ]


def _denoise_at_capacity(other_streams: "QuerySet[ActiveStream]", host_id: str) -> bool:
    """Whether `host_id` refuses one more denoised stream beside `other_streams` (placement.has_room)."""
    (load,) = _host_loads(other_streams, [host_id or media.host_id()])
    return not placement.has_room(load, settings.MAX_DENOISED_STREAMS)


def _place_denoised_stream() -> str | None:
    """The media host for a new denoised stream (placement.choose_host), None when no live host has room."""
    here = media.host_id()
    limit = settings.MAX_DENOISED_STREAMS
    with placement.PLACEMENT_SECONDS.time():
        (here_load,) = _host_loads(ActiveStream.objects.all(), [here])
        if placement.has_room(here_load, limit):
            chosen: str | None = here
        else:
            others = [host.host_id for host in hosts.live_hosts(here) if host.host_id != here]
            chosen = placement.choose_host(here_load, _host_loads(ActiveStream.objects.all(), others), limit)
    placement.PLACEMENTS.labels("refused" if chosen is None else "here" if chosen == here else "elsewhere").inc()
    return chosen


def start_stream(user: User, denoise: bool = True, time_zone: str = "") -> ActiveStream:
    """Go live. Two concurrent starts by one user (two tabs) leave exactly one stream: the loser gets AlreadyLive.

    Its media goes to this process, or for a denoised stream, when this one is full, to the least-loaded live
    media host with room (placement); a denoised start is refused (DenoiseAtCapacity) only when no host has room.
    The counts are not locked, so two simultaneous starts may pass a host's limit by one: a soft limit is enough,
    as a worker that falls behind passes whole streams through rather than garbling them.
    Refused with ChannelLayerUnavailable, changing nothing, while friends could not be told.
    """
    events.require_reachable()
    _require_recording_space(user)
    media_host = _place_denoised_stream() if denoise else media.host_id()
    if media_host is None:
        existing = active_stream_of(user)
        if existing is not None:
            raise AlreadyLive(existing)
        raise DenoiseAtCapacity()
    try:
        with transaction.atomic():
            # The host is named from the start (offers and other operations are forwarded to it), so a restarting
            # process never mistakes another's new stream for one of its own.
            stream = ActiveStream.objects.create(
                owner=user, denoise_enabled=denoise, started_at=clock.now(), time_zone=time_zone,
                media_host=media_host,
            )
    except IntegrityError:
        existing = active_stream_of(user)
        if existing is None:  # ended between our insert and this read; a retry is the honest answer
            raise StreamError("Your previous stream was just ending. Try again.") from None
        raise AlreadyLive(existing) from None
    logger.info(
        "stream started: user=%s session=%s denoise=%s media host=%s", user.username, stream.session_id, denoise,
        media_host,
    )
    events.tell_friends(
        friend_ids(user), {"type": events.STATUS_CHANGED, "username": user.username, "is_streaming": True}
    )
    events.stream_started(
        user.pk, session_id=str(stream.session_id), started_at=stream.started_at.isoformat(), denoise=denoise
    )
    return stream


def set_denoise(user: User, on: bool) -> ActiveStream:
    """Switch denoising of `user`'s live stream on or off; its audio crossfades as a whole and goes on.

    Switching on is refused like a denoised start (DenoiseSwitchAtCapacity), or with media.DenoiseUnavailable when
    the stream's media cannot be denoised; NotLive when nothing is live. Asking for what is already so changes
    nothing. The owner's pages are told on commit.
    """
    stream = active_stream_of(user)
    if stream is None:
        raise NotLive()
    if stream.denoise_enabled == on:
        return stream
    if on and _denoise_at_capacity(ActiveStream.objects.exclude(pk=stream.pk), stream.media_host):
        raise DenoiseSwitchAtCapacity()
    media.set_denoise(stream.session_id, on, host=stream.media_host)
    ActiveStream.objects.filter(pk=stream.pk).update(denoise_enabled=on)
    stream.denoise_enabled = on
    logger.info("denoise switched: user=%s session=%s denoise=%s", user.username, stream.session_id, on)
    events.denoise_switched(user.pk, on)
    return stream


def set_muted(user: User, muted: bool) -> ActiveStream:
    """Mute or unmute `user`'s live stream without ending it: while muted the server sends silence in place of
    their audio, on the same timeline, and the recording keeps that silence. NotLive when nothing is live; asking
    for what is already so changes nothing. The owner's and friends' pages are told on commit."""
    stream = active_stream_of(user)
    if stream is None:
        raise NotLive()
    if stream.muted == muted:
        return stream
    media.set_muted(stream.session_id, muted, host=stream.media_host)
    ActiveStream.objects.filter(pk=stream.pk).update(muted=muted)
    stream.muted = muted
    logger.info("stream %s: user=%s session=%s", "muted" if muted else "unmuted", user.username, stream.session_id)
    events.mute_changed(user.pk, muted)
    return stream


def stop_stream(user: User, *, reason: EndReason = EndReason.STOPPED) -> "EndedStream":
    """The broadcaster ends their stream (Stop, or leaving My page). Refused with
    ChannelLayerUnavailable, changing nothing, while friends could not be told; NotLive when nothing is live."""
    events.require_reachable()
    ended = end_stream(user, reason=reason)
    if ended is None:
        raise NotLive()
    return ended


def end_stream(
    user: User,
    *,
    reason: EndReason,
    session_id: uuid.UUID | str | None = None,
    only_if: Q | None = None,
) -> EndedStream | None:
    """End `user`'s stream, whatever the reason: the one way a stream ends. With `session_id`, only that
    session (a stale trigger from an older stream must not end a newer one); with `only_if`, only while the
    row still matches it (checked under the row's write lock). Idempotent: None when there is nothing (left)
    to end, e.g. the second of two concurrent stops."""
    with transaction.atomic():
        streams = ActiveStream.objects.select_for_update().filter(owner=user)
        if session_id is not None:
            streams = streams.filter(session_id=session_id)
        if only_if is not None:
            streams = streams.filter(only_if)
        stream = streams.first()
        if stream is None:
            return None
        stream.delete()
    logger.info("stream ended: user=%s session=%s reason=%s", user.username, stream.session_id, reason)

    finished = media.finish(stream.session_id, owner_id=user.pk, host=stream.media_host)
    recording = None
    if finished is not None and finished.duration > 0:
        recording = _register_recording(
            user, stream.session_id, finished, stream.denoise_enabled, stream.started_at, time_zone=stream.time_zone
        )

    owner_friends = friend_ids(user)
    events.tell_friends(
        owner_friends, {"type": events.STATUS_CHANGED, "username": user.username, "is_streaming": False}
    )
    events.stream_ended(user.pk, reason)
    if recording is not None:
        _announce_recording(user, recording, owner_friends)
    return EndedStream(owner_id=user.pk, session_id=stream.session_id, recording=recording)


def end_stream_session(
    session_id: uuid.UUID | str, *, reason: EndReason, only_if: Q | None = None
) -> EndedStream | None:
    """End a stream known only by its session id (media signals, timers). Quietly nothing if it already ended."""
    stream = ActiveStream.objects.select_related("owner").filter(session_id=session_id).first()
    if stream is None:
        return None
    return end_stream(stream.owner, reason=reason, session_id=session_id, only_if=only_if)


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA time zone called `name` (as a browser's Intl reports it), or None for anything else."""
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# Where each part of the day begins, by the local hour; before the first, it is still the previous day's night.
_PARTS_OF_DAY = ((5, "morning"), (12, "afternoon"), (17, "evening"), (22, "night"))


def recording_title(started_at: datetime, time_zone: str = "") -> str:
    """A title a person keeps: when the stream began by the broadcaster's own clock, in words ("Tuesday evening
    live"). A time zone that is unknown or missing reads as the server's TIME_ZONE."""
    local = started_at.astimezone(zone_named(time_zone) or timezone.get_default_timezone())
    if local.hour < _PARTS_OF_DAY[0][0]:
        return f"{local - timedelta(days=1):%A} night live"
    part = next(name for start, name in reversed(_PARTS_OF_DAY) if local.hour >= start)
    return f"{local:%A} {part} live"


def _register_recording(
    user: User,
    session_id: uuid.UUID,
    finished: "media.FinishedRecording",
    denoise: bool,
    started_at: datetime | None,
    time_zone: str = "",
    title: str | None = None,
) -> StreamRecording:
    """Save a finished stream's recording, titled by when it started (unknown only for a file orphaned
    without its stream row: then by when it was found) or by `title` (an uploaded file kept), with its
    waveform. Every way of saving a recording comes through here."""
    recording, _ = StreamRecording.objects.get_or_create(
        session_id=session_id,
        defaults={
            "owner": user,
            "title": title or recording_title(started_at or timezone.now(), time_zone),
            "audio_path": finished.relative_path,
            "duration": finished.duration,
            "denoised_seconds": finished.denoised,
            # Denoising may have been switched while live: a recording is "denoised" when any of it was.
            "denoise_enabled": denoise if finished.denoised is None else finished.denoised > 0,
            "peaks": media.peaks_of(finished.relative_path),
        },
    )
    return recording


def _announce_recording(user: User, recording: StreamRecording, owner_friends: set[int]) -> None:
    """The owner's and their friends' pages show a new recording (on commit)."""
    events.tell_friends(
        owner_friends | {user.pk},
        {"type": events.RECORDING_SAVED, "username": user.username, "recording": recording_as_json(recording)},
    )


# --- uploaded files: denoised, and kept as recordings if asked -------------------------------------------------


def denoise_upload(
    user: User, chunks: Iterable[bytes], *, denoise: bool = True, keep_title: str | None = None
) -> "media.UploadJob":
    """Queue an uploaded file to be denoised (or only converted) by the server's file worker, at lower priority
    than live streams. With `keep_title` it becomes one of `user`'s recordings once done, registered like a live
    one (on_upload_processed); refused with RecordingQuotaFull when their recordings fill their quota. Raises
    media.UploadRejected (too big) or media.UploadQueueFull."""
    if keep_title is not None:
        _require_recording_space(user)
    return media.submit_upload(user.pk, chunks, denoise=denoise, keep_title=keep_title)


def upload_job(user: User, job_id: str) -> "media.UploadJob | None":
    """The upload job, only for the person who submitted it."""
    return media.upload_job(job_id, user.pk)


def kept_recording(job: "media.UploadJob") -> StreamRecording | None:
    recording_id = job.extra.get("recording_id")
    return None if recording_id is None else StreamRecording.objects.filter(pk=recording_id).first()


def on_upload_processed(
    owner_id: int, session_id: uuid.UUID, finished: "media.FinishedRecording", title: str, denoise: bool, **_: Any
) -> StreamRecording | None:
    """An uploaded file to keep is processed: it is saved like a live stream's recording."""
    user = User.objects.filter(pk=owner_id).first()
    if user is None:
        return None
    recording = _register_recording(user, session_id, finished, denoise, started_at=None, title=title)
    _announce_recording(user, recording, friend_ids(user))
    return recording


def recording_as_json(recording: StreamRecording) -> dict[str, Any]:
    return {
        "id": recording.pk,
        "title": recording.title,
        "description": recording.description,
        "duration": round(recording.duration, 3),
        "created_at": recording.created_at.isoformat(),
        "denoise_enabled": recording.denoise_enabled,
        "denoised_seconds": None if recording.denoised_seconds is None else round(recording.denoised_seconds, 3),
        "url": reverse("recording_audio", args=[recording.pk]),
        "peaks": recording.peaks or [],
    }


def on_logged_out(user: User | None, **_: Any) -> None:
    """Logging out while live ends the stream at once: the page's own beacon would arrive unauthenticated."""
    if user is not None and user.is_authenticated:
        end_stream(user, reason=EndReason.LOGGED_OUT)


def on_user_deleting(instance: User, **_: Any) -> None:
    """`pre_delete` of a user: a live stream ends first, so its media stops before the rows cascade away."""
    end_stream(instance, reason=EndReason.ACCOUNT_DELETED)


def on_recording_deleted(instance: StreamRecording, **_: Any) -> None:
    """`post_delete` of a recording (its owner deleting it, or their account going): the audio file goes too,
    once the deletion is committed, so a rolled-back delete never loses audio."""
    relative_path = instance.audio_path
    transaction.on_commit(lambda: media.remove_recording_file(relative_path))


def on_credentials_changed(user_id: int, **_: Any) -> None:
    """A password change closes the person's open presence sockets: they reconnect only with valid credentials."""
    events.close_sockets_of(user_id)


def stream_status(owner: User, *, for_owner: bool = False) -> dict[str, Any]:
    """A person's live state. `for_owner`: also who listens (`listener_names`), which only the owner sees."""
    stream = active_stream_of(owner)
    status = {
        "username": owner.username,
        "is_streaming": stream is not None,
        "session_id": str(stream.session_id) if stream else None,
        "started_at": stream.started_at.isoformat() if stream else None,
        "denoise": stream.denoise_enabled if stream else None,
        "listeners": stream.listener_count if stream else 0,
        "muted": stream.muted if stream else False,
        # Whether the server has received the stream's audio (until then the broadcaster's page is connecting).
        "audio_started": stream is not None and stream.audio_started_at is not None,
    }
    if for_owner:
        status["listener_names"] = listener_names(stream.listener_ids) if stream else []
    return status


def listener_names(user_ids: Iterable[int]) -> list[str]:
    return sorted(User.objects.filter(pk__in=list(user_ids)).values_list("username", flat=True))


def set_listener_count(session_id: uuid.UUID | str, count: int, listener_ids: Iterable[int] | None = None) -> None:
    """Record a stream's listeners (from the media engine): how many connections, and who (user ids, when the
    engine says). Tells whoever watches the stream; only the owner's pages get the names."""
    stream = ActiveStream.objects.filter(session_id=session_id).first()
    if stream is None:
        return
    previous_count, previous_ids = stream.listener_count, stream.listener_ids
    ids = sorted(set(previous_ids if listener_ids is None else listener_ids))
    ActiveStream.objects.filter(pk=stream.pk).update(listener_count=count, listener_ids=ids)
    if count != previous_count or ids != previous_ids:
        events.listeners_changed(
            stream.owner_id, joined=count >= previous_count, count=count, names=listener_names(ids)
        )


def publish_offer(user: User, offer_sdp: str) -> tuple[ActiveStream, str]:
    """Connect the broadcaster's microphone to their live stream; returns it and the answer SDP.

    The offer is answered by the stream's media host, wherever it arrived. Raises NotLive, or media.MediaError
    (MediaHostUnavailable when that host is dead: its stream is being ended, and the broadcaster may go live
    again). When the first connection of a denoised stream fails because noise removal is unavailable, the stream
    is ended at once (no_audio) instead of staying live and silent.
    """
    stream = active_stream_of(user)
    if stream is None:
        raise NotLive()
    try:
        answer = media.publish(
            user.pk, stream.session_id, offer_sdp, denoise=stream.denoise_enabled, muted=stream.muted,
            host=stream.media_host,
        )
    except media.DenoiseUnavailable:
        if stream.audio_started_at is None:
            end_stream(user, reason=EndReason.NO_AUDIO, session_id=stream.session_id)
        raise
    # A mute while this offer was answered may have found no media yet: the engine follows the stored state.
    muted_now = ActiveStream.objects.filter(pk=stream.pk).values_list("muted", flat=True).first()
    if muted_now is not None and muted_now != stream.muted:
        media.set_muted(stream.session_id, muted_now, host=stream.media_host)
    return stream, answer


def listen_offer(viewer: User, owner: User, offer_sdp: str) -> tuple[ActiveStream, str]:
    """Connect a listener (already allowed by `can_access`) to `owner`'s stream; returns it and the answer SDP.
    The stream's media host answers, wherever the offer arrived, and checks access again (listener_still_allowed)
    when the connection attaches, so an unfriending meanwhile never gets audio."""
    stream = active_stream_of(owner)
    if stream is None:
        raise NotLive()
    answer = media.listen(
        stream.session_id, offer_sdp, listener_user_id=viewer.pk, owner_id=owner.pk, host=stream.media_host
    )
    return stream, answer


def listener_still_allowed(listener_user_id: int, owner_id: int) -> bool:
    """Whether a listener may still hear the owner's stream (asked by the media host as their audio attaches)."""
    viewer = User.objects.filter(pk=listener_user_id).first()
    owner = User.objects.filter(pk=owner_id).first()
    return viewer is not None and owner is not None and can_access(viewer, owner)


# --- what the media adapter reports (streams.signals) ---------------------------------------------------------


def on_publisher_connected(session_id: str, **_: Any) -> None:
    """Audio arrived; the first audio of a stream turns its broadcaster's pages from "Connecting…" to live."""
    now = clock.now()
    first = ActiveStream.objects.filter(session_id=session_id, audio_started_at__isnull=True).update(
        audio_started_at=now
    )
    ActiveStream.objects.filter(session_id=session_id).update(publisher_lost_at=None)
    if first:
        owner_id = ActiveStream.objects.filter(session_id=session_id).values_list("owner_id", flat=True).first()
        if owner_id is not None:
            events.audio_started(owner_id, str(session_id))


def on_publisher_gone(session_id: str, **_: Any) -> None:
    ActiveStream.objects.filter(session_id=session_id, publisher_lost_at__isnull=True).update(
        publisher_lost_at=clock.now()
    )


def on_listener_count_changed(
    session_id: str, count: int, listener_ids: Iterable[int] | None = None, **_: Any
) -> None:
    set_listener_count(session_id, count, listener_ids)


def on_denoise_mode_changed(session_id: str, denoised: bool, **_: Any) -> None:
    """The server's denoiser paused (busy) or resumed a stream: its broadcaster's pages say so."""
    owner_id = ActiveStream.objects.filter(session_id=session_id).values_list("owner_id", flat=True).first()
    if owner_id is not None:
        logger.info("session %s: %s", session_id, "denoised again" if denoised else "denoising paused (busy)")
        events.denoise_mode_changed(owner_id, denoised)


def on_media_stopping(session_ids: list[str], **_: Any) -> None:
    """The server process is stopping: its streams end now, with their recordings saved."""
    for session_id in session_ids:
        end_stream_session(session_id, reason=EndReason.SERVER_RESTART)


def on_friendship_changed(user_a: User, user_b: User, are_friends: bool, **_: Any) -> None:
    """A new friend sees a live stream at once; an unfriended person stops seeing, watching and hearing it."""
    for owner, viewer in ((user_a, user_b), (user_b, user_a)):
        stream = active_stream_of(owner)
        if stream is not None:
            events.tell_friends(
                [viewer.pk], {"type": events.STATUS_CHANGED, "username": owner.username, "is_streaming": are_friends}
            )
            if not are_friends:
                media.disconnect_listener(stream.session_id, viewer.pk, host=stream.media_host)
        # The viewer's pages add the owner to their friends list, with their live state, or take them off it.
        events.tell_user(
            viewer.pk,
            {
                "type": events.FRIENDS_CHANGED,
                "username": owner.username,
                "are_friends": are_friends,
                "is_streaming": are_friends and stream is not None,
            },
        )
        if not are_friends:
            events.revoke_stream_access(viewer_id=viewer.pk, owner_id=owner.pk)


def on_friend_requests_changed(user: User, **_: Any) -> None:
    """The person's open pages show how many friend requests wait for them, as it changes."""
    events.tell_user(user.pk, {"type": events.REQUESTS_CHANGED, "received": received_requests(user).count()})


# --- presence sockets and the deadlines ------------------------------------------------------------------------


def may_open_presence_socket(user: User) -> bool:
    """Whether the person is under MAX_PRESENCE_SOCKETS_PER_USER open presence sockets (all processes)."""
    return PresenceConnection.objects.filter(user=user).count() < settings.MAX_PRESENCE_SOCKETS_PER_USER


def presence_connected(user: User, channel_name: str) -> None:
    PresenceConnection.objects.get_or_create(
        channel_name=channel_name, defaults={"user": user, "host": media.host_id()}
    )
    ActiveStream.objects.filter(owner=user, presence_lost_at__isnull=False).update(
        presence_lost_at=None, presence_left_page=False
    )


def presence_disconnected(user: User, channel_name: str, *, page_left: bool = False) -> None:
    """Forget one presence socket. A live user with none left is away from now on (see end_overdue_streams);
    `page_left` when the socket's page went away itself (closed or reloaded) rather than losing its network."""
    PresenceConnection.objects.filter(channel_name=channel_name).delete()
    if not PresenceConnection.objects.filter(user=user).exists():
        ActiveStream.objects.filter(owner=user).update(presence_lost_at=clock.now(), presence_left_page=page_left)


def _overdue(now: datetime) -> dict[EndReason, Q]:
    """Which live rows are overdue at `now`, by the reason they end with."""
    away_since = now - timedelta(seconds=settings.STREAM_RECONNECT_GRACE_SECONDS)
    left_since = now - timedelta(seconds=settings.STREAM_LEAVE_GRACE_SECONDS)
    silent_since = now - timedelta(seconds=settings.STREAM_NO_AUDIO_SECONDS)
    return {
        # A page that went away itself and did not come back (a reload is back within a second) was closed.
        EndReason.TAB_CLOSED: Q(presence_left_page=True, presence_lost_at__lte=left_since),
        EndReason.CONNECTION_LOST: Q(presence_lost_at__lte=away_since) | Q(publisher_lost_at__lte=away_since),
        EndReason.NO_AUDIO: Q(audio_started_at__isnull=True, started_at__lte=silent_since),
        EndReason.MAX_LENGTH: Q(started_at__lte=now - timedelta(seconds=settings.MAX_STREAM_SECONDS)),
    }


def _held_here() -> QuerySet[ActiveStream]:
    """The live rows this server process answers for: those whose media it holds (placed on it at start), and
    rows with no host (left by a run before hosts were recorded). Every other process leaves them alone."""
    return ActiveStream.objects.filter(Q(media_host="") | Q(media_host=media.host_id()))


def end_overdue_streams() -> list[EndedStream]:
    """End every stream whose broadcaster has been away past the grace period (a reload or a blip comes back
    sooner and clears the marker), or that got no audio in time. Each is re-checked under its lock, so a
    broadcaster who comes back meanwhile keeps their stream. Streams whose media another server process holds
    are left to that process."""
    ended = []
    ours = _held_here()
    for reason, condition in _overdue(clock.now()).items():
        for session_id in ours.filter(condition).values_list("session_id", flat=True):
            stream = end_stream_session(session_id, reason=reason, only_if=condition)
            if stream is not None:
                ended.append(stream)
    return ended


def end_streams_of_dead_hosts() -> list[EndedStream]:
    """End the streams whose media host has not been heard from within MEDIA_HOST_DEAD_SECONDS: its media is
    gone, so friends are told and the broadcaster may go live again. The host registers the partial recording
    when it comes back (recover_after_restart). Each is ended only while still held by that host, so two
    surviving processes doing this at once end it once. The presence sockets a dead host held went with it too:
    they are forgotten, so that a broadcaster whose page reconnected elsewhere is away once that page closes."""
    ended = []
    here = media.host_id()
    with_sockets = PresenceConnection.objects.exclude(host__in=["", here]).values_list("host", flat=True).distinct()
    for host_id in hosts.known_dead(set(with_sockets), this_host_id=here):
        _forget_presence_sockets(PresenceConnection.objects.filter(host=host_id))
    others = ActiveStream.objects.exclude(media_host__in=["", here]).values_list("media_host", flat=True)
    for host_id in sorted(set(others)):
        if hosts.is_alive(host_id, this_host_id=here):
            continue
        held_there = Q(media_host=host_id)
        for session_id in ActiveStream.objects.filter(held_there).values_list("session_id", flat=True):
            stream = end_stream_session(session_id, reason=EndReason.SERVER_LOST, only_if=held_there)
            if stream is not None:
                ended.append(stream)
    return ended


def _forget_presence_sockets(sockets: QuerySet[PresenceConnection]) -> None:
    """Forget sockets that went with their server process. A live broadcaster with none left anywhere is away
    from now on, as if they had closed: their pages reconnect (to any process) within the grace period."""
    owners = set(sockets.values_list("user_id", flat=True))
    sockets.delete()
    still_connected = set(PresenceConnection.objects.filter(user_id__in=owners).values_list("user_id", flat=True))
    ActiveStream.objects.filter(owner_id__in=owners - still_connected, presence_lost_at__isnull=True).update(
        presence_lost_at=clock.now(), presence_left_page=False
    )


def recover_after_restart() -> list[EndedStream]:
    """On server start: streams this host left live in a crashed or killed run are ended like any other, their
    partial recordings repaired and saved; then recordings orphaned without a stream row are registered too.
    Streams other server processes hold are theirs: they keep going, and so do the presence sockets they hold
    and the partial recordings they are writing (RECORDINGS_DIR may be shared by all processes of a site)."""
    _forget_presence_sockets(PresenceConnection.objects.filter(Q(host="") | Q(host=media.host_id())))
    left_live = _held_here().values_list("session_id", flat=True)
    ended = [
        stream
        for session_id in left_live
        if (stream := end_stream_session(session_id, reason=EndReason.SERVER_RESTART)) is not None
    ]
    for orphan in media.orphaned_recordings():
        owner = User.objects.filter(pk=orphan.owner_id).first()
        if owner is None:
            logger.info("removing the partial recording of a deleted account: %s", orphan.partial_path)
            orphan.partial_path.unlink(missing_ok=True)
            continue
        if StreamRecording.objects.filter(session_id=orphan.session_id).exists():
            continue
        if ActiveStream.objects.filter(session_id=orphan.session_id).exists():
            continue  # still being written by the process that holds the stream
        finished = media.repair(orphan)
        if finished is not None and finished.duration > 0:
            _register_recording(owner, orphan.session_id, finished, denoise=True, started_at=None)
    return ended


def profile_context(viewer: User, owner: User) -> dict[str, Any]:
    """What a person's page shows to someone allowed to see it (see friends.services.can_access)."""
    return {"active_stream": active_stream_of(owner)}
