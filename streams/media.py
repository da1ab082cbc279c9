"""The Django side of the media engine: recording paths on disk, and the one narrow door to `audio_engine`.

`audio_engine` knows nothing of Django; this module owns the process's engine instance and translates between
session ids/owners and files under RECORDINGS_DIR. Layout: `RECORDINGS_DIR/<owner id>/<session id>.wav`, written
as `<session id>.partial.wav` while live and renamed when finalized, so a file still called `.partial.wav` after
a crash is an orphan to repair.
"""

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from asgiref.sync import async_to_sync
from django.conf import settings

from audio_engine import (
    DenoiserUnavailable,
    InvalidOffer,
    PublisherExists,
    StreamNotFound,
    complete_orphan_recording,
)
from streams import engine_host

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial.wav"


@dataclass(frozen=True)
class FinishedRecording:
    relative_path: str  # relative to RECORDINGS_DIR
    duration: float  # seconds, counted from the samples written


@dataclass(frozen=True)
class OrphanedRecording:
    owner_id: int
    session_id: uuid.UUID
    partial_path: Path


def recordings_dir() -> Path:
    return Path(settings.RECORDINGS_DIR)


def final_path(owner_id: int, session_id: uuid.UUID | str) -> Path:
    return recordings_dir() / str(owner_id) / f"{session_id}.wav"


def partial_path(owner_id: int, session_id: uuid.UUID | str) -> Path:
    return recordings_dir() / str(owner_id) / f"{session_id}{PARTIAL_SUFFIX}"


def absolute_path(relative_path: str) -> Path:
    """Resolve a stored recording path, refusing anything that escapes RECORDINGS_DIR."""
    root = recordings_dir().resolve()
    candidate = (root / relative_path).resolve()
    if not candidate.is_relative_to(root):
        raise ValueError(f"recording path escapes RECORDINGS_DIR: {relative_path!r}")
    return candidate


def _relative(path: Path) -> str:
    return str(path.resolve().relative_to(recordings_dir().resolve()))


def finish(session_id: uuid.UUID | str, *, owner_id: int) -> FinishedRecording | None:
    """Close a session's media (publisher, listeners, recorder) and return its saved recording, if any.

    When this process's engine holds no such session (it never published, or a previous run crashed), a
    partial file left on disk for the session is repaired instead.
    """
    finished = engine_host.end_session(str(session_id))
    if finished is not None:
        return FinishedRecording(relative_path=_relative(finished.path), duration=finished.duration_s)
    orphan_file = partial_path(owner_id, session_id)
    if orphan_file.exists():
        return repair(
            OrphanedRecording(owner_id=owner_id, session_id=uuid.UUID(str(session_id)), partial_path=orphan_file)
        )
    return None


def orphaned_recordings() -> list[OrphanedRecording]:
    orphans = []
    for partial in sorted(recordings_dir().glob(f"*/*{PARTIAL_SUFFIX}")):
        try:
            owner_id = int(partial.parent.name)
            session_id = uuid.UUID(partial.name.removesuffix(PARTIAL_SUFFIX))
        except ValueError:
            logger.warning("ignoring unexpected file in RECORDINGS_DIR: %s", partial)
            continue
        orphans.append(OrphanedRecording(owner_id=owner_id, session_id=session_id, partial_path=partial))
    return orphans


def repair(orphan: OrphanedRecording) -> FinishedRecording | None:
    """Fix the header of a recording left by a killed process and give it its final name."""
    try:
        repaired = complete_orphan_recording(orphan.partial_path)
    except (OSError, ValueError) as error:
        logger.error("could not repair %s: %s", orphan.partial_path, error)
        return None
    logger.info("repaired orphaned recording %s (%.2f s)", repaired.path, repaired.duration_s)
    return FinishedRecording(relative_path=_relative(repaired.path), duration=repaired.duration_s)


class MediaError(Exception):
    """Media negotiation failed; `status` is the HTTP status the API should answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def publish(owner_id: int, session_id: uuid.UUID, offer_sdp: str, *, denoise: bool) -> str:
    """Blocking: connect the broadcaster's offer to their session; returns the answer SDP."""
    target = final_path(owner_id, session_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        return async_to_sync(engine_host.publish)(str(session_id), offer_sdp, denoise=denoise, recording_path=target)
    except PublisherExists as error:
        raise MediaError(409, "This stream already has a broadcaster connected (another tab?).") from error
    except InvalidOffer as error:
        raise MediaError(400, f"The WebRTC offer cannot be answered: {error}") from error
    except DenoiserUnavailable as error:
        logger.error("denoiser unavailable: %s", error)
        raise MediaError(503, "Noise removal is unavailable on the server right now. Try without denoise.") from error


def listen(session_id: uuid.UUID, offer_sdp: str, *, listener_user_id: int) -> str:
    """Blocking: connect a listener's offer to a live session; returns the answer SDP."""
    try:
        return async_to_sync(engine_host.listen)(str(session_id), offer_sdp, listener_key=str(listener_user_id))
    except StreamNotFound as error:
        raise MediaError(404, "The stream has not started sending audio yet. Try again in a moment.") from error
    except InvalidOffer as error:
        raise MediaError(400, f"The WebRTC offer cannot be answered: {error}") from error


def denoise_headroom() -> int | None:
    """Blocking: more denoised streams this server can take now, measured by its denoise workers (None: unknown)."""
    return engine_host.denoise_headroom()


def disconnect_listener(session_id: uuid.UUID, listener_user_id: int) -> None:
    """Blocking: cut off every connection `listener_user_id` has to the session's audio (they lost access)."""
    engine_host.disconnect_listener(str(session_id), listener_key=str(listener_user_id))
