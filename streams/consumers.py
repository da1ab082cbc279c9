"""WebSocket consumers: authenticate, authorize with the one access rule, relay channel-layer events."""

import logging
from collections import Counter
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from friends import services as friends
from quietcast import untrusted_json
from streams import events, services

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_MANY = 4429
# What a browser sends when its page goes away: closed, reloaded or navigated elsewhere (not a dropped network).
CLOSE_GOING_AWAY = 1001


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """Answers malformed input with an error message instead of closing the socket."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None:
            await self.send_error("Send JSON text messages, not binary.")
            return
        try:
            content = untrusted_json.loads(text_data)
        except ValueError:
            await self.send_error("That message is not valid JSON.")
            return
        if not isinstance(content, dict):
            await self.send_error('Messages are JSON objects such as {"action": "get_status"}.')
            return
        await self.receive_json(content)

    async def send_error(self, message: str) -> None:
        await self.send_json({"type": "error", "error": message})

    def log_received(self, content: dict) -> None:
        logger.debug("%s received from %s: %s", type(self).__name__, self.scope["user"], content)


class PresenceConsumer(JsonConsumer):
    """`/ws/presence/`: which friends are live, and the person's own friends and requests, pushed as they change.
    Only friends hear about a user."""

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(services.may_open_presence_socket)(user):
            await self.close(code=CLOSE_TOO_MANY)
            return
        self.group = events.presence_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await database_sync_to_async(services.presence_connected)(user, self.channel_name)
        await self.accept()
        await self.send_all_statuses()

    async def disconnect(self, code: int) -> None:
        user = self.scope["user"]
        if not user.is_authenticated or not hasattr(self, "group"):  # refused at connect
            return
        await self.channel_layer.group_discard(self.group, self.channel_name)
        await database_sync_to_async(services.presence_disconnected)(
            user, self.channel_name, page_left=code == CLOSE_GOING_AWAY
        )

    async def receive_json(self, content: dict, **kwargs: Any) -> None:
        self.log_received(content)
        if content.get("action") == "get_status":
            await self.send_all_statuses()
        else:
            await self.send_error('Unknown action. The only action is {"action": "get_status"}.')

    async def send_all_statuses(self) -> None:
        live = await database_sync_to_async(services.live_friend_usernames)(self.scope["user"])
        await self.send_json({"type": "all_statuses", "streaming_users": live})

    async def presence_status_changed(self, event: dict) -> None:
        logger.debug("presence event for %s: %s", self.scope["user"], event)
        await self.send_json(
            {"type": "streaming_status_update", "username": event["username"], "is_streaming": event["is_streaming"]}
        )

    async def presence_credentials_changed(self, event: dict) -> None:
        # The group also carries events about friends; only the user's own credential change closes the socket.
        if event["user_id"] == self.scope["user"].pk:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def presence_recording_saved(self, event: dict) -> None:
        logger.debug("presence event for %s: %s", self.scope["user"], event)
        await self.send_json(
            {"type": "recording_saved", "username": event["username"], "recording": event["recording"]}
        )

    async def presence_recording_changed(self, event: dict) -> None:
        await self.send_json(
            {"type": "recording_updated", "username": event["username"], "recording": event["recording"]}
        )

    async def presence_recording_deleted(self, event: dict) -> None:
        await self.send_json({"type": "recording_deleted", "username": event["username"], "id": event["id"]})

    async def presence_requests_changed(self, event: dict) -> None:
        await self.send_json({"type": "requests_changed", "received": event["received"]})

    async def presence_friends_changed(self, event: dict) -> None:
        await self.send_json(
            {
                "type": "friends_changed",
                "username": event["username"],
                "are_friends": event["are_friends"],
                "is_streaming": event["is_streaming"],
            }
        )


# Open stream sockets per person in this process. Kept in memory, not in the database like presence sockets:
# they carry no lifecycle meaning, and a per-process bound is enough to stop one account exhausting a server.
_stream_sockets_by_viewer: Counter[int] = Counter()


class StreamConsumer(JsonConsumer):
    """`/ws/stream/<username>/`: listener counts and the end of one person's stream, for them and their friends."""

    async def connect(self) -> None:
        viewer = self.scope["user"]
        username = self.scope["url_route"]["kwargs"]["username"]
        owner = await database_sync_to_async(_allowed_owner)(viewer, username)
        if owner is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if _stream_sockets_by_viewer[viewer.pk] >= settings.MAX_STREAM_SOCKETS_PER_USER:
            await self.close(code=CLOSE_TOO_MANY)
            return
        _stream_sockets_by_viewer[viewer.pk] += 1
        self.counted_viewer: int | None = viewer.pk
        self.owner_id = owner.pk
        self.is_owner = owner.pk == viewer.pk
        self.groups_joined = [events.stream_group(owner.pk), events.viewer_group(viewer.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        status = await database_sync_to_async(services.stream_status)(owner, for_owner=self.is_owner)
        if not self.is_owner:
            del status["session_id"]  # the session id lets its holder publish: the owner's pages only
        await self.send_json({"type": "stream_status", **status})

    async def disconnect(self, code: int) -> None:
        viewer_id = getattr(self, "counted_viewer", None)
        if viewer_id is not None:
            self.counted_viewer = None
            _stream_sockets_by_viewer[viewer_id] -= 1
            if _stream_sockets_by_viewer[viewer_id] <= 0:
                del _stream_sockets_by_viewer[viewer_id]
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: dict, **kwargs: Any) -> None:
        self.log_received(content)
        await self.send_error("This socket only sends; it takes no messages.")

    async def stream_listeners_changed(self, event: dict) -> None:
        message = {"type": event["event"], "count": event["count"]}
        if self.is_owner and "names" in event:  # who listens is the broadcaster's to know; friends get the count
            message["names"] = event["names"]
        await self.send_json(message)

    async def stream_mute_changed(self, event: dict) -> None:
        await self.send_json({"type": "mute_changed", "muted": event["muted"]})

    async def stream_audio_started(self, event: dict) -> None:
        if self.is_owner:  # the broadcaster's pages stop saying "Connecting…"
            await self.send_json({"type": "audio_started", "session_id": event["session_id"]})

    async def stream_started(self, event: dict) -> None:
        message = {"type": "stream_started", "started_at": event["started_at"], "denoise": event["denoise"]}
        if self.is_owner:
            message["session_id"] = event["session_id"]
        await self.send_json(message)

    async def stream_denoise_mode_changed(self, event: dict) -> None:
        if self.is_owner:  # how the server treats the stream is the broadcaster's concern
            await self.send_json({"type": "denoise_mode_changed", "denoised": event["denoised"]})

    async def stream_denoise_switched(self, event: dict) -> None:
        if self.is_owner:  # the broadcaster's other pages keep their checkbox in step
            await self.send_json({"type": "denoise_switched", "denoise": event["denoise"]})

    async def stream_ended(self, event: dict) -> None:
        await self.send_json({"type": "stream_ended", "reason": event["reason"]})

    async def viewer_access_revoked(self, event: dict) -> None:
        if event["owner_id"] == self.owner_id:
            await self.close(code=CLOSE_FORBIDDEN)


def _allowed_owner(viewer, username: str):
    try:
        owner = friends.find_user(username)
    except friends.UserNotFound:
        return None
    return owner if friends.can_access(viewer, owner) else None
