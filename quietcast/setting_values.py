"""Parsers for settings whose values are structured text, failing at start-up with the setting's name.

A mistyped value must stop the server with a sentence that names the variable, not a traceback from deep inside
a library, and never start a server that breaks later in a user's browser.
"""

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_ICE_SERVER_KEYS = {"urls", "username", "credential"}


def ice_servers(text: str, name: str = "ICE_SERVERS") -> list[dict[str, Any]]:
    """A JSON list of RTCIceServer objects: `[{"urls": "turn:host:3478", "username": "…", "credential": "…"}]`."""
    example = '[{"urls": "stun:stun.example.org:3478"}]'
    try:
        servers = json.loads(text)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is not valid JSON ({error}); expected e.g. {example}") from error
    if not isinstance(servers, list):
        raise ImproperlyConfigured(f"{name} must be a JSON list of ICE servers, e.g. {example}")
    for position, server in enumerate(servers, start=1):
        where = f"{name}: server {position}"
        if not isinstance(server, dict):
            raise ImproperlyConfigured(f'{where} must be an object such as {{"urls": "stun:host:3478"}}')
        urls = server.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not urls or not isinstance(urls, list) or not all(isinstance(url, str) and url for url in urls):
            raise ImproperlyConfigured(f'{where} needs "urls": a URL string or a list of them')
        if bad_scheme := [url for url in urls if url.split(":", 1)[0] not in ("stun", "stuns", "turn", "turns")]:
            raise ImproperlyConfigured(f"{where}: {bad_scheme[0]!r} is not a stun:, stuns:, turn: or turns: URL")
        if unknown := set(server) - _ICE_SERVER_KEYS:
            raise ImproperlyConfigured(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        for key in ("username", "credential"):
            if key in server and not isinstance(server[key], str):
                raise ImproperlyConfigured(f'{where}: "{key}" must be a string')
    return servers


def redis_channel_layer(url: str) -> dict[str, Any]:
    """The channel layer over the Redis at `url`. Its receive is a blocking pop that Redis answers after 5 s of
    quiet; redis-py 8 gives up reading after 5 s by default, which would close every WebSocket quiet that long
    (1011). Reads wait well past the pop (a Redis gone silent is still noticed); connecting gives up after 5 s."""
    host = {"address": url, "socket_timeout": 30, "socket_connect_timeout": 5}
    return {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}
