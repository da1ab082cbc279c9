"""Recordings after the stream: who may play, rename or delete one, and where its audio lives on disk.

Playing follows friends.services.can_access (the owner and their friends). Renaming and deleting are the
owner's alone. Someone who may not even see a recording is told it does not exist, so ids reveal nothing.
"""

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AnonymousUser, User
from django.utils.text import slugify

from friends.services import can_access
from streams import media
from streams.models import StreamRecording

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


@dataclass(frozen=True)
class RecordingAudio:
    """A recording's audio file, resolved and checked to lie inside RECORDINGS_DIR."""

    path: Path
    size: int
    download_name: str


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


def download_name(recording: StreamRecording) -> str:
    """A file name that says whose recording it is, when, and what it is called."""
    stem = slugify(f"{recording.owner.username} {recording.created_at:%Y-%m-%d %H%M} {recording.title}")
    return f"{stem[:120] or 'recording'}{Path(recording.audio_path).suffix or '.wav'}"


def open_recording_for(viewer: User | AnonymousUser, recording_id: int) -> RecordingAudio:
    """The audio file of a recording `viewer` may play (the owner or a friend of theirs)."""
    recording = visible_recording(viewer, recording_id)
    path = audio_file_path(recording)
    if path is None:
        raise RecordingNotFound("The audio of this recording is missing.")
    return RecordingAudio(path=path, size=path.stat().st_size, download_name=download_name(recording))


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
    recording.save(update_fields=["title", "description"])
    return recording


def delete_recording(user: User, recording_id: int) -> None:
    """Delete the owner's recording and its audio file."""
    recording = _owned_recording(user, recording_id)
    path = audio_file_path(recording)
    recording.delete()
    if path is not None:
        path.unlink(missing_ok=True)
