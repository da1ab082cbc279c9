"""The one media adapter: this process's MediaEngine, recording files on disk, and the door to `audio_engine`.

`audio_engine` knows nothing of Django; this module owns the process's engine instance and translates between
session ids/owners and files under RECORDINGS_DIR. Layout: `RECORDINGS_DIR/<owner id>/<session id>.wav`, written
as `<session id>.partial.wav` while live and renamed when finalized, so a file still called `.partial.wav` after
a crash is an orphan to repair.

The engine lives on the server's event loop. Synchronous Django code (views, services) reaches it through the
blocking functions here, which run the coroutine on that loop with `async_to_sync`, and gets domain errors
(`MediaError`) back. What the engine reports goes upward as Django signals (streams.signals), sent in order from
a database thread; this module never calls the layers above it.

Every operation on a live stream names the stream's media host: one held by another server process runs there,
forwarded over the channel layer (streams.media_forwarding), and its answer or error comes back as if it ran here.
"""

import asyncio
import contextvars
import dataclasses
import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections
from django.dispatch import Signal

from audio_engine import (
    DenoiserUnavailable,
    EngineConfig,
    EngineStats,
    InvalidOffer,
    MediaEngine,
    PublisherExists,
    RecordingResult,
    StreamNotFound,
    TooManyListenerConnections,
    complete_orphan_recording,
)
from audio_engine.file_denoise import FileDenoiser, FileDenoiserBusy, FileJob, FileRejected
from audio_engine.framing import SAMPLE_RATE
from audio_engine.jitter import require_receive_hook
from audio_engine.recorder import BYTES_PER_SAMPLE
from audio_engine.recording_files import encode_ogg_opus, join_recordings, waveform_peaks
from streams import hosts, media_forwarding, signals

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial.wav"
# Recordings are 48 kHz 16-bit mono WAV: their size follows from their duration.
RECORDING_BYTES_PER_SECOND = SAMPLE_RATE * BYTES_PER_SAMPLE


@dataclass(frozen=True)
class FinishedRecording:
    relative_path: str  # relative to RECORDINGS_DIR
    duration: float  # seconds, counted from the samples written
    # Seconds of it denoised, as the engine did it frame by frame; None when unknown (a repaired orphan).
    denoised: float | None = None


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


def remove_recording_file(relative_path: str) -> None:
    """Delete a recording's audio file; never anything outside RECORDINGS_DIR, and never a directory."""
    try:
        path = absolute_path(relative_path)
    except ValueError:
        return
    if path.is_file():
        path.unlink()
    compressed_path(path).unlink(missing_ok=True)


def compressed_path(wav_path: Path) -> Path:
    """Where a recording's Ogg/Opus copy is cached: beside the WAV, so it goes with it."""
    return wav_path.with_suffix(".ogg")


def compressed_copy(wav_path: Path) -> Path:
    """The recording's Ogg/Opus copy, encoded the first time it is asked for."""
    ogg_path = compressed_path(wav_path)
    if not ogg_path.is_file():
        encode_ogg_opus(wav_path, ogg_path)
    return ogg_path


# Peaks per recording: enough for a player a few hundred pixels wide, small enough to send with every listing.
WAVEFORM_PEAKS = 200


def peaks_of(relative_path: str) -> list[float] | None:
    """The recording's waveform peaks, or None when its file is missing or unreadable."""
    try:
        return waveform_peaks(absolute_path(relative_path), WAVEFORM_PEAKS)
    except (OSError, ValueError) as error:  # a file that is not a recording is a ValueError
        logger.warning("no waveform for %s: %s", relative_path, error)
        return None


def join(owner_id: int, relative_paths: list[str]) -> FinishedRecording:
    """One new recording file made of the given ones, in order, on one timeline (the originals stay)."""
    joined_path = final_path(owner_id, uuid.uuid4())
    duration = join_recordings([absolute_path(path) for path in relative_paths], joined_path)
    return FinishedRecording(relative_path=_relative(joined_path), duration=duration)


def _relative(path: Path) -> str:
    return str(path.resolve().relative_to(recordings_dir().resolve()))


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
    """Media negotiation failed; the message is shown to the person who asked."""


class PublisherAlreadyConnected(MediaError):
    def __init__(self) -> None:
        super().__init__("This stream already has a broadcaster connected (another tab?).")


class OfferRejected(MediaError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"The WebRTC offer cannot be answered: {reason}")


class DenoiseUnavailable(MediaError):
    def __init__(self) -> None:
        super().__init__("Noise removal is unavailable on the server right now. Try without denoise.")


class NotSendingYet(MediaError):
    def __init__(self) -> None:
        super().__init__("The stream has not started sending audio yet. Try again in a moment.")


class SessionEnded(MediaError):
    def __init__(self) -> None:
        super().__init__("This stream ended while its audio was being connected.")


class TooManyConnections(MediaError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You are already listening to this stream on {limit} connection(s). Close one of them first."
        )


class MediaHostUnavailable(MediaError):
    """The server process holding the stream's media is dead, or did not answer in time."""

    def __init__(self) -> None:
        super().__init__("The server carrying this stream's audio is not answering. Try again in a moment.")


# --- this process's engine -------------------------------------------------------------------------------------

_engine: MediaEngine | None = None
_signal_queue: asyncio.Queue[tuple[Signal, dict[str, Any]]] | None = None
_background_tasks: set[asyncio.Task[None]] = set()


def _config() -> EngineConfig:
    return EngineConfig(
        ice_servers=settings.ICE_SERVERS,
        denoise_model_path=settings.DENOISE_MODEL,
        atten_lim_db=settings.DENOISE_ATTEN_LIM_DB,
        post_filter_beta=settings.DENOISE_POST_FILTER_BETA,
        receive_prefetch=None if settings.MEDIA_RECEIVE_PREFETCH < 0 else settings.MEDIA_RECEIVE_PREFETCH,
        denoise_workers=settings.DENOISE_WORKERS,
        denoise_backend=settings.DENOISE_BACKEND,
        media_timeout_s=settings.MEDIA_TIMEOUT_SECONDS,
        listener_connect_timeout_s=settings.LISTENER_CONNECT_TIMEOUT_SECONDS,
        max_connections_per_listener=settings.MAX_LISTENER_CONNECTIONS_PER_USER or None,
        broadcaster_opus_bitrate=settings.OPUS_MAX_AVERAGE_BITRATE or None,
    )


class _SignalsFromEngine:
    """Engine callbacks (on the loop, must be cheap): queue the signal for `_send_signals`."""

    def publisher_connected(self, session_id: str) -> None:
        _queue_signal(signals.publisher_connected, session_id=session_id)

    def publisher_gone(self, session_id: str) -> None:
        _queue_signal(signals.publisher_gone, session_id=session_id)

    def listener_count_changed(self, session_id: str, count: int, listener_keys: tuple[str, ...]) -> None:
        # `listen` keys each connection with its listener's user id.
        listener_ids = [int(key) for key in listener_keys if key.isdigit()]
        _queue_signal(signals.listener_count_changed, session_id=session_id, count=count, listener_ids=listener_ids)

    def denoise_mode_changed(self, session_id: str, denoised: bool) -> None:
        _queue_signal(signals.denoise_mode_changed, session_id=session_id, denoised=denoised)


def _queue_signal(signal: Signal, **kwargs: Any) -> None:
    if _signal_queue is not None:
        _signal_queue.put_nowait((signal, kwargs))


async def _send_signal(signal: Signal, **kwargs: Any) -> None:
    for receiver, outcome in await database_sync_to_async(signal.send_robust)(sender=signals.MEDIA, **kwargs):
        if isinstance(outcome, Exception):
            logger.error("%s failed for %s", receiver, kwargs, exc_info=outcome)


async def _send_signals(queue: asyncio.Queue[tuple[Signal, dict[str, Any]]]) -> None:
    # One sender keeps the signals in order, and a slow database write never blocks the engine.
    while True:
        signal, kwargs = await queue.get()
        await _send_signal(signal, **kwargs)


def _fresh_task(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task in a fresh context. Engine callbacks, and signal handlers, run in whatever context the loop was
    in: often a view's `async_to_sync` call, and a task inheriting that context would hand its database work to
    the view's thread executor, which is gone afterwards."""
    return asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())


def _background(coroutine: Coroutine[Any, Any, None]) -> None:
    task = _fresh_task(coroutine)
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)


async def _in_fresh_context(function: Callable[[], bool]) -> bool:
    """Run a database check from engine callbacks, which may carry a finished view's context (see _background)."""
    task = asyncio.get_running_loop().create_task(
        database_sync_to_async(function)(), context=contextvars.Context()
    )
    return await task


def engine() -> MediaEngine:
    """This process's engine, created on first use. Must be called on the server's event loop."""
    global _engine, _signal_queue
    if _engine is None:
        _engine = MediaEngine(_config(), _SignalsFromEngine())
        _signal_queue = asyncio.Queue()
        _background(_send_signals(_signal_queue))
        _end_streams_on_server_shutdown(_engine)
    return _engine


def start_with_server() -> None:
    """Under Daphne: create this process's engine and start its denoise workers now (from the first request),
    so that the first broadcaster does not wait for the model to load; every stream runs on those workers,
    denoised or not. Elsewhere (tests calling views directly, management commands) nothing starts."""
    if _engine is not None or not _daphne_running():
        return
    if settings.REDIS_URL:  # other processes reach this one's media only through a shared channel layer
        _background(media_forwarding.serve(host_id(), _SERVED, tuple(_FORWARDED_ERRORS.values())))
    _background(_start_denoise_workers(engine()))


async def _start_denoise_workers(media_engine: MediaEngine) -> None:
    try:
        await media_engine.start()
    except DenoiserUnavailable as error:
        logger.error("denoise workers unavailable (the next publish tries again): %s", error)


def _daphne_running() -> bool:
    try:
        from twisted.internet import reactor
    except ImportError:
        return False
    return bool(reactor.running)


def host_id() -> str:
    """This server process's id as a media host (see ActiveStream.media_host): MEDIA_HOST_ID, stable across
    restarts so that a restarted process finds the streams it held."""
    return str(settings.MEDIA_HOST_ID)


def check_engine_support() -> None:
    """Fail at start-up (raising audio_engine.EngineUnsupported) if the installed aiortc cannot carry streams."""
    require_receive_hook()


def _end_streams_on_server_shutdown(media_engine: MediaEngine) -> None:
    """Under Daphne, before the process exits (SIGTERM, Ctrl-C): say which streams it carries
    (`media_stopping`), so they end through the lifecycle, then stop the engine."""
    if not _daphne_running():
        return
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    # Twisted types `reactor` as an interface whose methods mypy reads without `self`. The trigger runs from the
    # signal handler in whatever context the loop was in when the signal came (see _fresh_task).
    cast(Any, reactor).addSystemEventTrigger(
        "before", "shutdown", lambda: Deferred.fromFuture(_fresh_task(stop_media(media_engine)))
    )


async def stop_media(media_engine: MediaEngine) -> None:
    """The process is stopping: end its streams through the lifecycle (`media_stopping`), then stop the engine.
    The engine is stopped even when ending the streams fails: a connection left open keeps the process from
    exiting (aiortc's decoder threads), and a restarted process finds the streams it held."""
    try:
        await _send_signal(signals.media_stopping, session_ids=media_engine.session_ids())
    except Exception:
        logger.exception("could not end this process's streams before it stops")
    await media_engine.shutdown()


# --- blocking entry points for synchronous code -----------------------------------------------------------------


def finish(session_id: uuid.UUID | str, *, owner_id: int, host: str = "") -> FinishedRecording | None:
    """Close a session's media (publisher, listeners, recorder) on `host` (the stream's media host; "" for this
    process) and return its saved recording, if any.

    When the host's engine holds no such session (it never published, or a previous run crashed), a partial file
    left on disk for the session is repaired instead; so it is here when the host is dead (RECORDINGS_DIR is shared
    by a site's processes). A host that does not answer keeps the file: it is registered when that host restarts.
    """
    if _held_here(host) or not hosts.is_alive(host, host_id()):
        return _finish_here(str(session_id), owner_id)
    try:
        finished = media_forwarding.request(
            host, "finish", {"session_id": str(session_id), "owner_id": owner_id}, _FORWARDED_ERRORS
        )
    except media_forwarding.HostUnreachable as error:
        logger.error("%s; the recording of %s waits for that host's restart", error, session_id)
        return None
    return None if finished is None else FinishedRecording(**finished)


def _finish_here(session_id: str, owner_id: int) -> FinishedRecording | None:
    finished = _end_session(str(session_id))
    if finished is not None:
        if finished.duration_s == 0:
            return None  # no audio ever arrived: the engine kept no file
        return FinishedRecording(
            relative_path=_relative(finished.path), duration=finished.duration_s, denoised=finished.denoised_s
        )
    orphan_file = partial_path(owner_id, session_id)
    if orphan_file.exists():
        return repair(
            OrphanedRecording(owner_id=owner_id, session_id=uuid.UUID(str(session_id)), partial_path=orphan_file)
        )
    return None


def _end_session(session_id: str) -> RecordingResult | None:
    if _engine is None or not _engine.is_publishing(session_id):
        return None
    return async_to_sync(_engine.end)(session_id)


def publish(
    owner_id: int, session_id: uuid.UUID, offer_sdp: str, *, denoise: bool, muted: bool = False, host: str = ""
) -> str:
    """Blocking: connect the broadcaster's offer to their session on its media `host`; returns the answer SDP.
    `muted` is the session's state when the host first takes it (afterwards `set_muted` keeps it in step)."""
    return cast(
        str,
        _on_host(host, "publish", owner_id=owner_id, session_id=str(session_id), offer_sdp=offer_sdp,
                 denoise=denoise, muted=muted),
    )


def _publish_here(owner_id: int, session_id: str, offer_sdp: str, denoise: bool, muted: bool) -> str:
    target = final_path(owner_id, session_id)
    target.parent.mkdir(parents=True, exist_ok=True)

    async def answer() -> str:
        return await engine().publish(
            str(session_id), offer_sdp, denoise=denoise, recording_path=target, muted=muted
        )

    try:
        return async_to_sync(answer)()
    except PublisherExists as error:
        raise PublisherAlreadyConnected() from error
    except InvalidOffer as error:
        raise OfferRejected(str(error)) from error
    except StreamNotFound as error:
        raise SessionEnded() from error
    except DenoiserUnavailable as error:
        logger.error("denoiser unavailable: %s", error)
        raise DenoiseUnavailable() from error


# A friend sees LIVE as soon as the stream starts, a moment before the broadcaster's own WebRTC offer arrives.
PUBLISHER_WAIT_S = 5.0


def _nobody_admitted(listener_user_id: int, owner_id: int) -> bool:
    return False


# Whether a listener (user id) may still hear an owner's (user id) stream; run in a database thread. Set from above
# (admit_listeners_by); until then nobody is admitted.
_listener_admission: Callable[[int, int], bool] = _nobody_admitted


def admit_listeners_by(check: Callable[[int, int], bool]) -> None:
    """Set what the media host asks (listener id, owner id) when a listener's connection attaches."""
    global _listener_admission
    _listener_admission = check


def listen(session_id: uuid.UUID, offer_sdp: str, *, listener_user_id: int, owner_id: int, host: str = "") -> str:
    """Blocking: connect a listener's offer to a live session on its media `host`; returns the answer SDP. The
    host asks `admit_listeners_by`'s check again when the connection attaches: access revoked meanwhile means no
    audio."""
    return cast(
        str,
        _on_host(host, "listen", session_id=str(session_id), offer_sdp=offer_sdp,
                 listener_user_id=listener_user_id, owner_id=owner_id),
    )


def _listen_here(session_id: str, offer_sdp: str, listener_user_id: int, owner_id: int) -> str:
    def still_allowed() -> bool:
        return _listener_admission(listener_user_id, owner_id)

    async def answer() -> str:
        media_engine = engine()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISHER_WAIT_S
        while not media_engine.is_publishing(str(session_id)) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return await media_engine.listen(
            str(session_id),
            offer_sdp,
            listener_key=str(listener_user_id),
            admit=lambda: _in_fresh_context(still_allowed),
        )

    try:
        return async_to_sync(answer)()
    except StreamNotFound as error:
        raise NotSendingYet() from error
    except InvalidOffer as error:
        raise OfferRejected(str(error)) from error
    except TooManyListenerConnections as error:
        raise TooManyConnections(error.limit) from error


def _change_live_session(session_id: uuid.UUID | str, change: Callable[[MediaEngine, str], None]) -> None:
    """Blocking: apply `change` to a session this process's engine holds, on the engine's loop. Nothing to do
    when it holds no media for it (yet: its first offer is answered with the stream's state), or it ended meanwhile."""
    if _engine is None or not _engine.is_publishing(str(session_id)):
        return
    media_engine = _engine

    async def apply() -> None:
        change(media_engine, str(session_id))

    try:
        async_to_sync(apply)()
    except StreamNotFound:
        return


def set_denoise(session_id: uuid.UUID, on: bool, *, host: str = "") -> None:
    """Blocking: switch a live session's denoising on or off on its media `host` (the stream crossfades as a
    whole); see `_change_live_session`. Raises DenoiseUnavailable when it cannot be switched on (its denoise
    workers never started)."""
    _on_host(host, "set_denoise", session_id=str(session_id), on=on)


def _set_denoise_here(session_id: str, on: bool) -> None:
    try:
        _change_live_session(session_id, lambda media_engine, session: media_engine.set_denoise(session, on))
    except DenoiserUnavailable as error:
        logger.error("cannot switch denoising on for %s: %s", session_id, error)
        raise DenoiseUnavailable() from error


def set_muted(session_id: uuid.UUID, muted: bool, *, host: str = "") -> None:
    """Blocking: mute or unmute a live session on its media `host` (its listeners and recording get silence in
    place of its audio); see `_change_live_session`."""
    _on_host(host, "set_muted", session_id=str(session_id), muted=muted)


def _set_muted_here(session_id: str, muted: bool) -> None:
    _change_live_session(session_id, lambda media_engine, session: media_engine.set_muted(session, muted))


def denoise_headroom() -> int | None:
    """Blocking: more denoised streams this server can take now, measured by its denoise workers (None: unknown,
    before they have started)."""
    if _engine is None:
        return None
    media_engine = _engine

    async def measured() -> int | None:
        return media_engine.denoise_headroom()

    return async_to_sync(measured)()


def engine_stats() -> EngineStats | None:
    """Blocking: what this process's engine carries and has counted (None: no engine yet, nothing carried)."""
    if _engine is None:
        return None
    media_engine = _engine

    async def counted() -> EngineStats:
        return media_engine.stats()

    return async_to_sync(counted)()


def announce_this_host() -> None:
    """Blocking: tell the other server processes that this media host is alive, with its free denoise capacity."""
    hosts.announce(host_id(), denoise_headroom())


def disconnect_listener(session_id: uuid.UUID, listener_user_id: int, *, host: str = "") -> None:
    """Blocking: cut off every connection `listener_user_id` has to the session's audio on its media `host` (they
    lost access; a host that is gone carries no audio to cut)."""
    try:
        _on_host(host, "disconnect_listener", session_id=str(session_id), listener_user_id=listener_user_id)
    except MediaHostUnavailable:
        logger.warning("media host %s could not be told to disconnect a listener of %s", host, session_id)


def _disconnect_listener_here(session_id: str, listener_user_id: int) -> None:
    if _engine is not None and _engine.is_publishing(str(session_id)):
        async_to_sync(_engine.disconnect_listeners)(str(session_id), str(listener_user_id))


# --- routing: each operation runs on the host that holds the stream's media (streams.media_forwarding) ---------

_LOCAL: dict[str, Callable[..., Any]] = {
    "publish": _publish_here,
    "listen": _listen_here,
    "finish": _finish_here,
    "set_denoise": _set_denoise_here,
    "set_muted": _set_muted_here,
    "disconnect_listener": _disconnect_listener_here,
}


def _finish_here_plain(session_id: str, owner_id: int) -> dict[str, Any] | None:
    finished = _finish_here(session_id, owner_id)
    return None if finished is None else dataclasses.asdict(finished)


# What this host runs for others: the same operations, with results in plain values.
_SERVED: dict[str, Callable[..., Any]] = {**_LOCAL, "finish": _finish_here_plain}

# The errors a host's operation may raise that reach the requester as themselves.
_FORWARDED_ERRORS: dict[str, type[MediaError]] = {
    error.__name__: error
    for error in (
        PublisherAlreadyConnected, OfferRejected, DenoiseUnavailable, NotSendingYet, SessionEnded, TooManyConnections
    )
}


def _held_here(host: str) -> bool:
    """Whether `host` is this process. Without Redis there is no channel between processes: only this one."""
    return not settings.REDIS_URL or host in ("", host_id())


def _on_host(host: str, operation: str, **arguments: Any) -> Any:
    """Run `operation` here, or on `host` over the channel layer; MediaHostUnavailable when that host is dead or
    does not answer within MEDIA_FORWARD_TIMEOUT_SECONDS."""
    if _held_here(host):
        return _LOCAL[operation](**arguments)
    if not hosts.is_alive(host, host_id()):
        logger.warning("%s for a stream on media host %s, which is not alive", operation, host)
        raise MediaHostUnavailable()
    try:
        return media_forwarding.request(host, operation, arguments, _FORWARDED_ERRORS)
    except media_forwarding.HostUnreachable as error:
        logger.error("%s", error)
        raise MediaHostUnavailable() from error


# --- denoising uploaded files (audio_engine.file_denoise) ------------------------------------------------------

UploadJob = FileJob


class UploadRejected(MediaError):
    """The upload is not audio we can use (`reason`: see audio_engine.file_denoise), or too big."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


TOO_BIG = "too_big"
EMPTY = "empty"
UNAVAILABLE = "unavailable"


class UploadQueueFull(MediaError):
    def __init__(self) -> None:
        super().__init__("The server is busy with other files. Try again in a minute.")


_file_denoiser: FileDenoiser | None = None
_file_denoiser_lock = threading.Lock()


def _files() -> FileDenoiser:
    """This process's file denoiser (its worker starts with the first file): same model and settings as live."""
    global _file_denoiser
    with _file_denoiser_lock:
        if _file_denoiser is None:
            _file_denoiser = FileDenoiser(
                _config().denoise_settings,
                settings.DENOISE_BACKEND,
                max_jobs=settings.DENOISE_UPLOAD_QUEUE,
                niceness=settings.DENOISE_UPLOAD_NICENESS,
                scratch_dir=Path(settings.VAR_DIR) / "uploads",
                job_ttl_s=settings.DENOISE_UPLOAD_JOB_TTL_SECONDS,
                on_finished=_keep_if_asked,
            )
        return _file_denoiser


def submit_upload(owner_id: int, chunks: Iterable[bytes], *, denoise: bool, keep_title: str | None) -> UploadJob:
    """Queue an uploaded file for the file worker (denoised or only converted to 48 kHz mono WAV). With
    `keep_title` it becomes one of the owner's recordings when done (signals.upload_processed). Raises
    UploadRejected (too big: DENOISE_UPLOAD_MAX_MB) or UploadQueueFull."""
    files = _files()
    limit = int(settings.DENOISE_UPLOAD_MAX_MB * 1e6)
    path = files.new_input_path()
    size = 0
    with path.open("wb") as upload:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                break
            upload.write(chunk)
    if size > limit:
        path.unlink(missing_ok=True)
        raise UploadRejected(TOO_BIG, f"The file is larger than {settings.DENOISE_UPLOAD_MAX_MB:g} MB.")
    if size == 0:
        path.unlink(missing_ok=True)
        raise UploadRejected(EMPTY, "The file is empty.")
    extra = {} if keep_title is None else {"keep_title": keep_title, "session_id": uuid.uuid4(), "owner_id": owner_id}
    try:
        return files.submit(
            path, owner=str(owner_id), denoise=denoise, max_seconds=settings.DENOISE_UPLOAD_MAX_SECONDS, extra=extra
        )
    except FileDenoiserBusy as error:
        raise UploadQueueFull() from error


def wait_for_upload(job: UploadJob) -> bool:
    """Blocking: wait for a short file to be done (True); False for one longer than DENOISE_UPLOAD_SYNC_SECONDS,
    or one not done in a reasonable time (a queue ahead of it): the caller hands out the job instead. Raises
    UploadRejected when the file was refused."""
    job.decoded.wait(timeout=settings.DENOISE_UPLOAD_SYNC_SECONDS * 2 + 30)
    if job.duration_s is not None and job.duration_s <= settings.DENOISE_UPLOAD_SYNC_SECONDS:
        job.finished.wait(timeout=settings.DENOISE_UPLOAD_SYNC_SECONDS * 2 + 30)
    if job.error is not None:
        raise UploadRejected(job.error.reason, str(job.error))
    return job.done


def stop_file_denoiser() -> None:
    """Stop this process's file worker and forget its jobs (server shutdown; the next file starts a new one)."""
    global _file_denoiser
    with _file_denoiser_lock:
        files, _file_denoiser = _file_denoiser, None
    if files is not None:
        files.shutdown()


def upload_job(job_id: str, owner_id: int) -> UploadJob | None:
    """The job, for the person who submitted it only."""
    job = _files().job(job_id)
    return job if job is not None and job.owner == str(owner_id) else None


def upload_error(job: UploadJob) -> UploadRejected | None:
    return None if job.error is None else UploadRejected(job.error.reason, str(job.error))


def _keep_if_asked(job: UploadJob) -> None:
    """On the file denoiser's thread, when a job is done: a file to keep is copied under RECORDINGS_DIR and handed
    upward (signals.upload_processed) to be registered like a live recording."""
    if "keep_title" not in job.extra:
        return
    owner_id, session_id = job.extra["owner_id"], job.extra["session_id"]
    target = final_path(owner_id, session_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(job.output_path, target)
    finished = FinishedRecording(_relative(target), duration=job.duration_s or 0.0, denoised=job.denoised_s)
    try:
        responses: list[tuple[Any, Any]] = signals.upload_processed.send(
            sender=signals.MEDIA,
            owner_id=owner_id,
            session_id=session_id,
            finished=finished,
            title=job.extra["keep_title"],
            denoise=job.denoise,
        )
        for _, recording in responses:
            if recording is not None:  # the receiver's saved recording
                job.extra["recording_id"] = recording.pk
    except Exception:
        target.unlink(missing_ok=True)
        raise
    finally:
        connections.close_all()  # this thread's own connections
    if "recording_id" not in job.extra:
        target.unlink(missing_ok=True)
        raise FileRejected(UNAVAILABLE, "The file was processed but could not be kept (was the account deleted?).")
