"""WebSocket authentication: the browser's session cookie, or `Authorization: Token <key>` for headless clients."""

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_for_token(key: str):
    """The API's own token check (hashed keys, expiry, inactive users refused), so sockets and API agree."""
    from knox.auth import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    try:
        user, _token = TokenAuthentication().authenticate_credentials(key.encode())
    except AuthenticationFailed:
        return AnonymousUser()
    return user


class _TokenHeaderMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() == "token" and key.strip():
            scope = dict(scope, user=await _user_for_token(key.strip()))
        return await super().__call__(scope, receive, send)


def SessionOrTokenAuthMiddleware(inner):  # noqa: N802 - reads like the other channels middleware stacks
    """Session auth first; a token header, when present, decides the user instead."""
    return AuthMiddlewareStack(_TokenHeaderMiddleware(inner))
