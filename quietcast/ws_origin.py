"""WebSocket Origin check.

Browsers send cookies with cross-site WebSocket handshakes, so a page on another site could otherwise open a
socket as the visitor. A browser's handshake is accepted only from the same origin as the Host it connects to,
or from an origin listed in CSRF_TRUSTED_ORIGINS. Headless clients send no Origin and authenticate with a token.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def is_allowed_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    if origin is None:
        return True
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parsed = urlsplit(origin)
    if not parsed.scheme or not parsed.netloc or host is None:
        return False
    http_scheme = "https" if scheme == "wss" else "http"
    return parsed.scheme == http_scheme and parsed.netloc.lower() == host.lower()


class SameOriginValidator:
    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            host = _header(scope, b"host")
            if not is_allowed_origin(origin, host, scope.get("scheme", "ws")):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
