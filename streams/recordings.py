"""Recordings after the stream: who may play, rename, merge or delete one, pages of them, and where their audio
lives on disk (the WAV, and its Ogg/Opus copy made once when first asked for).

Playing follows friends.services.can_access (the owner and their friends). Renaming, merging and deleting are the
owner's alone, and reach the owner's and friends' open pages on commit. Someone who may not even see a recording
is told it does not exist, so ids reveal nothing.
"""

from dataclasses import dataclass
from datetime import UTC, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from friends.services import can_access, friend_ids
from streams import events, media
from streams.models import StreamRecording
from streams.services import recording_as_json

TITLE_MAX_LENGTH: int = StreamRecording._meta.get_field("title").max_length or 0
DESCRIPTION_MAX_LENGTH: int = StreamRecording._meta.get_field("description").max_length or 0


class RecordingError(Exception):
    """A recording operation that cannot be done; the message is shown to the person who asked."""


class RecordingNotFound(RecordingError):
    pass


class NotRecordingOwner(RecordingError):
    pass


class InvalidRecordingDetails(RecordingError):
    pass


class InvalidPage(RecordingError):
    """`before` or `limit` of a page request cannot be read."""


class MergeRefused(RecordingError):
    """The recordings are not consecutive fragments of one evening."""


class AudioFormat(StrEnum):
    WAV = "wav"  # lossless, as recorded
    OGG = "ogg"  # Ogg/Opus, made once and cached beside the WAV


CONTENT_TYPES = {AudioFormat.WAV: "audio/wav", AudioFormat.OGG: "audio/ogg"}
MAX_PAGE_SIZE = 100
# A WAV file's sizes are 32-bit: a merged recording must stay under 4 GiB (about 12 hours).
MAX_MERGED_SECONDS = (2**32 - 1 - 44) / media.RECORDING_BYTES_PER_SECOND


@dataclass(frozen=True)
class RecordingAudio:
    """A recording's audio file, resolved and checked to lie inside RECORDINGS_DIR."""

    path: Path
    size: int
    download_name: str
    content_type: str


def visible_recording(viewer: User | AnonymousUser, recording_id: int) -> StreamRecording:
    """The recording if `viewer` may see it; otherwise RecordingNotFound, whether it exists or not."""
    recording = StreamRecording.objects.select_related("owner").filter(pk=recording_id).first()
    if recording is None or not can_access(viewer, recording.owner):
        raise RecordingNotFound("There is no such recording.")
    return recording


def _owned_recording(user: User, recording_id: int) -> StreamRecording:
    recording = visible_recording(user, recording_id)
    if recording.owner_id != user.pk:
        raise NotRecordingOwner("Only the person who made a recording can change or delete it.")
    return recording


def audio_file_path(recording: StreamRecording) -> Path | None:
    """The recording's audio file, or None if there is none or its stored path would leave RECORDINGS_DIR."""
    try:
        path = media.absolute_path(recording.audio_path)
    except ValueError:
        return None
    return path if path.is_file() else None


def download_name(recording: StreamRecording, audio_format: AudioFormat = AudioFormat.WAV) -> str:
    """A file name that says whose recording it is, when (UTC), and what it is called."""
    stem = slugify(f"{recording.owner.username} {recording.created_at.astimezone(UTC):%Y-%m-%d %H%M} {recording.title}")
    return f"{stem[:120] or 'recording'}.{audio_format}"


def open_recording_for(
    viewer: User | AnonymousUser, recording_id: int, audio_format: AudioFormat = AudioFormat.WAV
) -> RecordingAudio:
    """The audio file of a recording `viewer` may play (the owner or a friend of theirs), as WAV or Ogg/Opus."""
    recording = visible_recording(viewer, recording_id)
    path = audio_file_path(recording)
    if path is None:
        raise RecordingNotFound("The audio of this recording is missing.")
    if audio_format is AudioFormat.OGG:
        try:
            path = media.compressed_copy(path)
        except (OSError, ValueError) as error:
            raise RecordingNotFound("The audio of this recording cannot be read.") from error
    return RecordingAudio(
        path=path,
        size=path.stat().st_size,
        download_name=download_name(recording, audio_format),
        content_type=CONTENT_TYPES[audio_format],
    )


def _tell_pages(recording: StreamRecording, message: dict[str, Any]) -> None:
    """Send an event about `recording` to the owner's and their friends' open pages, on commit."""
    events.tell_friends(friend_ids(recording.owner) | {recording.owner_id}, message)


def _tell_changed(recording: StreamRecording) -> None:
    _tell_pages(
        recording,
        {
            "type": events.RECORDING_CHANGED,
            "username": recording.owner.username,
            "recording": recording_as_json(recording),
        },
    )


def _tell_deleted(recording: StreamRecording, recording_id: int) -> None:
    _tell_pages(recording, {"type": events.RECORDING_DELETED, "username": recording.owner.username, "id": recording_id})


def rename_recording(
    user: User, recording_id: int, title: str | None = None, description: str | None = None
) -> StreamRecording:
    """Change the title and/or description of the owner's recording; None keeps what is there."""
    recording = _owned_recording(user, recording_id)
    if title is not None:
        title = title.strip()
        if not title:
            raise InvalidRecordingDetails("A recording needs a title.")
        if len(title) > TITLE_MAX_LENGTH:
            raise InvalidRecordingDetails(f"A title can be at most {TITLE_MAX_LENGTH} characters long.")
        recording.title = title
    if description is not None:
        description = description.strip()
        if len(description) > DESCRIPTION_MAX_LENGTH:
            raise InvalidRecordingDetails(f"A description can be at most {DESCRIPTION_MAX_LENGTH} characters long.")
        recording.description = description
    with transaction.atomic():
        recording.save(update_fields=["title", "description"])
        _tell_changed(recording)
    return recording


def delete_recording(user: User, recording_id: int) -> None:
    """Delete the owner's recording; its audio file goes once that is committed (streams.services)."""
    recording = _owned_recording(user, recording_id)
    with transaction.atomic():
        recording.delete()
        _tell_deleted(recording, recording_id)


@dataclass(frozen=True)
class RecordingPage:
    recordings: list[StreamRecording]
    more: bool  # whether older recordings follow (ask again with before=<the last one's id>)


def _whole_number(text: str) -> int | None:
    """`text` as a whole number when it is one written in ASCII digits (no longer than any id can be)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _page_size(limit: str | None) -> int:
    if limit is None or limit == "":
        return settings.RECORDINGS_PAGE_SIZE
    size = _whole_number(limit)
    if size is None or not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidPage(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}.")
    return size


def _older_than(owner: User, before: str | None) -> Q:
    """Recordings after `before` in the list's order (newest first): a recording id of the owner's, or a time."""
    if before is None or before == "":
        return Q()
    if before.isascii() and before.isdigit():
        anchor_id = _whole_number(before)
        anchor = StreamRecording.objects.filter(owner=owner, pk=anchor_id).first() if anchor_id else None
        if anchor is None:
            raise InvalidPage("before: there is no such recording in this list.")
        return Q(created_at__lt=anchor.created_at) | Q(created_at=anchor.created_at, pk__lt=anchor.pk)
    try:
        moment = parse_datetime(before)
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidPage("before must be a recording id or a time such as 2026-11-21T22:53:00Z.")
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return Q(created_at__lt=moment)


def page_of_recordings(owner: User, *, before: str | None = None, limit: str | None = None) -> RecordingPage:
    """The owner's recordings newest first, `limit` of them (RECORDINGS_PAGE_SIZE by default) older than `before`.

    Recordings saved before waveforms existed get theirs here, once, as they are first listed.
    """
    size = _page_size(limit)
    found = list(StreamRecording.objects.filter(Q(owner=owner) & _older_than(owner, before))[: size + 1])
    page = found[:size]
    for recording in page:
        if recording.peaks is None and (peaks := media.peaks_of(recording.audio_path)) is not None:
            StreamRecording.objects.filter(pk=recording.pk, peaks__isnull=True).update(peaks=peaks)
            recording.peaks = peaks
    return RecordingPage(recordings=page, more=len(found) > size)


def page_as_json(page: RecordingPage) -> dict[str, Any]:
    return {
        "recordings": [recording_as_json(recording) for recording in page.recordings],
        "more": page.more,
        "next_before": page.recordings[-1].pk if page.more else None,
    }


def _previous_of(recording: StreamRecording) -> StreamRecording | None:
    """The owner's recording just before this one in time."""
    return (
        StreamRecording.objects.filter(owner_id=recording.owner_id)
        .filter(Q(created_at__lt=recording.created_at) | Q(created_at=recording.created_at, pk__lt=recording.pk))
        .first()
    )


def merge_with_previous(user: User, recording_id: int) -> StreamRecording:
    """Join the owner's recording to the one just before it (fragments of one evening, split by an accidental
    end) as one new recording: one WAV, the earlier audio then the later, one timeline. It keeps the earlier one's
    title and sits where the two were; the two go, so the audio kept, and the quota used, stay the same."""
    later = _owned_recording(user, recording_id)
    earlier = _previous_of(later)
    if earlier is None:
        raise MergeRefused("There is no earlier recording to merge this one with.")
    gap = later.created_at - timedelta(seconds=later.duration) - earlier.created_at
    allowed_gap = timedelta(minutes=settings.RECORDINGS_MERGE_GAP_MINUTES)
    if gap > allowed_gap:
        raise MergeRefused(
            f"“{later.title}” began more than {settings.RECORDINGS_MERGE_GAP_MINUTES:g} minutes after "
            f"“{earlier.title}” ended; only fragments of one evening can be merged."
        )
    if earlier.duration + later.duration > MAX_MERGED_SECONDS:
        raise MergeRefused("Together these recordings would be longer than one recording can be (12 hours).")
    try:
        joined = media.join(user.pk, [earlier.audio_path, later.audio_path])
    except (OSError, ValueError) as error:
        raise MergeRefused("The audio of one of these recordings cannot be read.") from error
    try:
        peaks = media.peaks_of(joined.relative_path)
        with transaction.atomic():
            both = StreamRecording.objects.select_for_update().filter(pk__in=[earlier.pk, later.pk])
            if both.count() != 2:  # one went in the meantime (deleted or merged elsewhere)
                raise RecordingNotFound("One of these recordings is gone; reload to see the list as it is.")
            merged = StreamRecording.objects.create(
                owner=user,
                title=earlier.title,
                description="\n\n".join(part for part in (earlier.description, later.description) if part),
                audio_path=joined.relative_path,
                duration=joined.duration,
                denoise_enabled=earlier.denoise_enabled or later.denoise_enabled,
                denoised_seconds=(
                    None
                    if earlier.denoised_seconds is None or later.denoised_seconds is None
                    else earlier.denoised_seconds + later.denoised_seconds
                ),
                peaks=peaks,
            )
            # Where the two were in the list: at the later one's time.
            StreamRecording.objects.filter(pk=merged.pk).update(created_at=later.created_at)
            merged.created_at = later.created_at
            for part in (earlier, later):
                part_id = part.pk
                part.delete()  # its file goes on commit (streams.services.on_recording_deleted)
                _tell_deleted(part, part_id)
            _tell_pages(
                merged,
                {"type": events.RECORDING_SAVED, "username": user.username, "recording": recording_as_json(merged)},
            )
    except BaseException:
        media.remove_recording_file(joined.relative_path)
        raise
    return merged
