"""Channel-layer group names, event types and why a stream ended, in one place.

Presence: every user's presence sockets join `presence_group(user_id)`; an event about alice is sent to the
presence group of each of alice's friends, so strangers never hear about her.
Stream: `/ws/stream/<owner>/` sockets join `stream_group(owner_id)` and their viewer's `viewer_group(user_id)`.

Events describe changes that are already stored: they are sent after the transaction commits
(`send_on_commit`), and a send that fails (the channel layer's Redis is down) is logged, never raised, so a done
change is never reported as an error. Operations that must not happen unannounced check `require_reachable()`
first.
"""

import asyncio
import logging
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# Channel-layer message types; Channels dispatches "a.b" to the consumer method `a_b`.
STATUS_CHANGED = "presence.status_changed"
RECORDING_SAVED = "presence.recording_saved"
RECORDING_CHANGED = "presence.recording_changed"  # renamed (title, description)
RECORDING_DELETED = "presence.recording_deleted"
LISTENERS_CHANGED = "stream.listeners_changed"
STREAM_STARTED = "stream.started"
STREAM_ENDED = "stream.ended"
DENOISE_MODE_CHANGED = "stream.denoise_mode_changed"
DENOISE_SWITCHED = "stream.denoise_switched"
MUTE_CHANGED = "stream.mute_changed"
AUDIO_STARTED = "stream.audio_started"
ACCESS_REVOKED = "viewer.access_revoked"
CREDENTIALS_CHANGED = "presence.credentials_changed"
REQUESTS_CHANGED = "presence.requests_changed"
FRIENDS_CHANGED = "presence.friends_changed"

# How long a reachability check of the channel layer may take before the layer counts as down.
REACHABILITY_TIMEOUT_S = 2.0


class EndReason(StrEnum):
    """Why a stream ended, as pages receive it in `{"type": "stream_ended", "reason": ...}`."""

    STOPPED = "stopped"  # the Stop button or the API
    TAB_CLOSED = "tab_closed"  # the broadcaster's page was closed, or left for another page after a prompt
    LOGGED_OUT = "logged_out"  # the broadcaster logged out
    CONNECTION_LOST = "connection_lost"  # the broadcaster's page or media stayed away past the grace period
    NO_AUDIO = "no_audio"  # no audio arrived within the set time of starting
    SERVER_RESTART = "server_restart"  # the server stopped, or found the stream left live by its last run
    SERVER_LOST = "server_lost"  # the server process holding the stream stopped answering (crashed, killed)
    MAX_LENGTH = "max_length"  # the stream reached MAX_STREAM_SECONDS
    ACCOUNT_DELETED = "account_deleted"  # the broadcaster's account was deleted


class ChannelLayerUnavailable(Exception):
    """The channel layer cannot deliver events now (its Redis is down)."""


def presence_group(user_id: int) -> str:
    return f"quietcast.presence.{user_id}"


def stream_group(owner_id: int) -> str:
    return f"quietcast.stream.{owner_id}"


def viewer_group(viewer_id: int) -> str:
    """Every stream socket a person has open, whoever's stream it watches (to close them when unfriended)."""
    return f"quietcast.viewer.{viewer_id}"


def _send_now(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    logger.debug("channel-layer send to %s: %s", group, message)
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # The change this event describes is stored; pages catch up when their sockets reconnect.
        logger.exception("could not send %s to %s", message.get("type"), group)


def send_on_commit(group: str, message: dict[str, Any]) -> None:
    """Send `message` to `group` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: _send_now(group, message), robust=True)


async def _layer_answers() -> None:
    layer = get_channel_layer()
    connection = getattr(layer, "connection", None)
    if connection is None:
        return  # the in-memory layer is always there
    await asyncio.wait_for(connection(0).ping(), REACHABILITY_TIMEOUT_S)


def require_reachable() -> None:
    """Raise ChannelLayerUnavailable unless events can be delivered now (from synchronous code)."""
    try:
        async_to_sync(_layer_answers)()
    except Exception as error:
        logger.error("channel layer unreachable: %s", error)
        raise ChannelLayerUnavailable(str(error)) from error


def tell_friends(friend_ids: Iterable[int], message: dict[str, Any]) -> None:
    """Send `message` to the presence sockets of each friend, on commit."""
    for friend_id in friend_ids:
        send_on_commit(presence_group(friend_id), message)


def tell_user(user_id: int, message: dict[str, Any]) -> None:
    """Send `message` to the user's own presence sockets (every page they have open), on commit."""
    send_on_commit(presence_group(user_id), message)


def tell_stream_watchers(owner_id: int, message: dict[str, Any]) -> None:
    send_on_commit(stream_group(owner_id), message)


def stream_started(owner_id: int, *, session_id: str, started_at: str, denoise: bool) -> None:
    """To the owner's and friends' stream sockets; only the owner's sockets pass `session_id` on."""
    tell_stream_watchers(
        owner_id,
        {"type": STREAM_STARTED, "session_id": session_id, "started_at": started_at, "denoise": denoise},
    )


def stream_ended(owner_id: int, reason: EndReason) -> None:
    tell_stream_watchers(owner_id, {"type": STREAM_ENDED, "reason": str(reason)})


def denoise_mode_changed(owner_id: int, denoised: bool) -> None:
    tell_stream_watchers(owner_id, {"type": DENOISE_MODE_CHANGED, "denoised": denoised})


def denoise_switched(owner_id: int, denoise: bool) -> None:
    """The owner switched their live stream's denoising (their other pages' checkboxes follow)."""
    tell_stream_watchers(owner_id, {"type": DENOISE_SWITCHED, "denoise": denoise})


def mute_changed(owner_id: int, muted: bool) -> None:
    """The broadcaster muted or unmuted their live stream: friends' pages show it, the owner's follow."""
    tell_stream_watchers(owner_id, {"type": MUTE_CHANGED, "muted": muted})


def audio_started(owner_id: int, session_id: str) -> None:
    """The server received the stream's first audio: the broadcaster's pages stop saying "Connecting…"."""
    tell_stream_watchers(owner_id, {"type": AUDIO_STARTED, "session_id": session_id})


def listeners_changed(owner_id: int, *, joined: bool, count: int, names: list[str]) -> None:
    """To the stream's watchers; only the owner's sockets pass the listeners' `names` on."""
    tell_stream_watchers(
        owner_id,
        {"type": LISTENERS_CHANGED, "event": "listener_joined" if joined else "listener_left", "count": count,
         "names": names},
    )


def revoke_stream_access(viewer_id: int, owner_id: int) -> None:
    send_on_commit(viewer_group(viewer_id), {"type": ACCESS_REVOKED, "owner_id": owner_id})


def close_sockets_of(user_id: int) -> None:
    """Close the user's presence sockets (their password changed): they reconnect only with valid credentials."""
    send_on_commit(presence_group(user_id), {"type": CREDENTIALS_CHANGED, "user_id": user_id})
