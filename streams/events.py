"""Channel-layer group names and event types, in one place.

Presence: every user's presence sockets join `presence_group(user_id)`; an event about alice is sent to the
presence group of each of alice's friends, so strangers never hear about her.
Stream: `/ws/stream/<owner>/` sockets join `stream_group(owner_id)` and their viewer's `viewer_group(user_id)`.
"""

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# Channel-layer message types; Channels dispatches "a.b" to the consumer method `a_b`.
STATUS_CHANGED = "presence.status_changed"
RECORDING_SAVED = "presence.recording_saved"
LISTENERS_CHANGED = "stream.listeners_changed"
STREAM_ENDED = "stream.ended"
ACCESS_REVOKED = "viewer.access_revoked"
CREDENTIALS_CHANGED = "presence.credentials_changed"


def presence_group(user_id: int) -> str:
    return f"quietcast.presence.{user_id}"


def stream_group(owner_id: int) -> str:
    return f"quietcast.stream.{owner_id}"


def viewer_group(viewer_id: int) -> str:
    """Every stream socket a person has open, whoever's stream it watches (to close them when unfriended)."""
    return f"quietcast.viewer.{viewer_id}"


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    logger.debug("channel-layer send to %s: %s", group, message)
    async_to_sync(layer.group_send)(group, message)


def tell_friends(friend_ids: Iterable[int], message: dict[str, Any]) -> None:
    """Send `message` to the presence sockets of each friend (from synchronous code)."""
    for friend_id in friend_ids:
        _send(presence_group(friend_id), message)


def tell_stream_watchers(owner_id: int, message: dict[str, Any]) -> None:
    _send(stream_group(owner_id), message)


def revoke_stream_access(viewer_id: int, owner_id: int) -> None:
    _send(viewer_group(viewer_id), {"type": ACCESS_REVOKED, "owner_id": owner_id})


def close_sockets_of(user_id: int) -> None:
    """Close the user's presence sockets (their password changed): they reconnect only with valid credentials."""
    _send(presence_group(user_id), {"type": CREDENTIALS_CHANGED, "user_id": user_id})
