"""The STUN/TURN servers a person's browser or client should use, with TURN credentials minted for them.

TURN relays media for people behind NATs that block direct connections. Static TURN credentials handed to every
account would let anyone relay anything through the server forever; instead Quietcast uses the time-limited
scheme of the TURN REST API draft that coturn implements (`use-auth-secret` with `static-auth-secret`): the
username is `<expiry unix time>:<user id>` and the password is base64(HMAC-SHA1(secret, username)), so coturn can
check it without asking Quietcast, and it stops working at the expiry. Written here because it is a few lines of
standard-library code; no maintained Python package implements this scheme on its own.
"""

import base64
import hashlib
import hmac
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser


def turn_credentials(secret: str, user_label: str, ttl_seconds: int, now: float) -> tuple[str, str]:
    """(username, password) valid until now + ttl_seconds for a coturn started with the same secret."""
    username = f"{int(now) + ttl_seconds}:{user_label}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(user: AbstractBaseUser, now: float | None = None) -> list[dict[str, Any]]:
    """ICE_SERVERS as configured, plus the TURN_URLS with credentials minted for `user` when TURN_SECRET is set."""
    servers: list[dict[str, Any]] = list(settings.ICE_SERVERS)
    if settings.TURN_SECRET and settings.TURN_URLS:
        username, credential = turn_credentials(
            settings.TURN_SECRET,
            str(user.pk),
            settings.TURN_CREDENTIAL_TTL_SECONDS,
            time.time() if now is None else now,
        )
        servers.append({"urls": list(settings.TURN_URLS), "username": username, "credential": credential})
    return servers
