"""The Quietcast HTTP API, as used by the command-line client (token authentication, JSON bodies)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp


class ApiError(Exception):
    """A failed API call, with a one-line message fit for the terminal."""


class QuietcastApi:
    def __init__(self, server: str, session: aiohttp.ClientSession) -> None:
        self.server = server.rstrip("/")
        self._session = session
        self._token: str | None = None

    async def login(self, username: str, password: str) -> None:
        body = await self._call("POST", "/api/auth/token/", {"username": username, "password": password})
        self._token = body["token"]

    async def ice_servers(self) -> list[dict]:
        """The server's ICE servers; an empty list when the server does not publish any."""
        try:
            body = await self._call("GET", "/api/ice-servers/", allow_missing=True)
        except ApiError:
            return []
        if isinstance(body, dict):
            body = body.get("ice_servers", body.get("iceServers", []))
        return body if isinstance(body, list) else []

    async def start_stream(self, denoise: bool) -> dict:
        return await self._call("POST", "/api/stream/start/", {"denoise": denoise})

    async def send_publisher_offer(self, sdp: str) -> str:
        body = await self._call("POST", "/api/stream/offer/", {"sdp": sdp, "type": "offer"})
        return body["sdp"]

    async def stop_stream(self) -> None:
        await self._call("POST", "/api/stream/stop/", {})

    async def send_listener_offer(self, username: str, sdp: str) -> str:
        body = await self._call("POST", f"/api/stream/listener/{username}/offer/", {"sdp": sdp, "type": "offer"})
        return body["sdp"]

    async def denoise_file(
        self, audio_path: Path, *, poll_every_s: float = 1.0, on_progress: Callable[[float], None] | None = None
    ) -> bytes:
        """The server's denoised version of the file (48 kHz mono WAV); waits for the job of a long one."""
        form = aiohttp.FormData()
        form.add_field("audio", audio_path.read_bytes(), filename=audio_path.name)
        request = "POST /api/denoise/"
        status, body = await self._request("POST", "/api/denoise/", data=form)
        while status == 202:
            job = json.loads(body)
            if on_progress is not None:
                on_progress(job["progress"])
            await asyncio.sleep(poll_every_s)
            request = f"GET {job['url']}"
            status, body = await self._request("GET", job["url"])
        if status >= 400:
            raise ApiError(f"{request} failed ({status}): {_body_error(body)}")
        return body

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        headers = {"Authorization": f"Token {self._token}"} if self._token else {}
        try:
            async with self._session.request(method, self.server + path, headers=headers, **kwargs) as reply:
                return reply.status, await reply.read()
        except aiohttp.ClientError as exc:
            raise ApiError(f"cannot reach {self.server}: {exc}") from exc

    async def _call(self, method: str, path: str, payload: dict | None = None, *,
                    allow_missing: bool = False) -> Any:
        headers = {"Authorization": f"Token {self._token}"} if self._token else {}
        try:
            async with self._session.request(method, self.server + path, json=payload, headers=headers) as reply:
                if reply.status == 404 and allow_missing:
                    return None
                try:
                    body = await reply.json(content_type=None)
                except ValueError:
                    body = None
                if reply.status >= 400:
                    raise ApiError(f"{method} {path} failed ({reply.status}): {_error_text(body, reply.reason)}")
                return body
        except aiohttp.ClientError as exc:
            raise ApiError(f"cannot reach {self.server}: {exc}") from exc


def _error_text(body: Any, fallback: str | None) -> str:
    if isinstance(body, dict):
        for key in ("error", "detail"):
            if key in body:
                return str(body[key])
        if body:
            return "; ".join(f"{key}: {value}" for key, value in body.items())
    return fallback or "no details"


def _body_error(body: bytes) -> str:
    try:
        return _error_text(json.loads(body), None)
    except ValueError:
        return "no details"
