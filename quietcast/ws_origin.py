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


def page_scheme(scope: dict) -> str:
    """The scheme of the site's own pages, whose origin a handshake must come from.

    Daphne leaves the scheme out of a WebSocket's scope, so a wss:// handshake cannot be told from a ws:// one by
    the scope alone. With HTTPS on every page is https (Quietcast serves only TLS, or a proxy redirects plain
    http), and behind a trusted proxy X-Forwarded-Proto says so, as Django's CSRF check reads it for forms.
    """
    if settings.HTTPS or scope.get("scheme") in ("wss", "https"):
        return "https"
    if settings.TRUSTED_PROXY and _header(scope, b"x-forwarded-proto") == "https":
        return "https"
    return "http"


def is_allowed_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    """Whether a handshake from `origin` to `host` may go on; `scheme` is the site's pages' (http or https)."""
    if origin is None:
        return True
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parsed = urlsplit(origin)
    if not parsed.scheme or not parsed.netloc or host is None:
        return False
    return parsed.scheme == scheme and parsed.netloc.lower() == host.lower()


class SameOriginValidator:
    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            host = _header(scope, b"host")
            if not is_allowed_origin(origin, host, page_scheme(scope)):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
