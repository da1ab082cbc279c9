"""Every URL and WebSocket route, as every role: anonymous, a stranger, someone whose friend request is pending,
a friend, and the owner (alice). A new route without expectations here fails the suite, so no endpoint ships
without someone deciding who may use it.

Each request targets alice's things (her status, stream, recordings, page). Cells are the status codes (or,
for sockets, whether the connection is accepted).
"""

import wave

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from knox.models import AuthToken
from rest_framework.test import APIClient

from quietcast.asgi import application
from quietcast.ws_routing import websocket_urlpatterns
from streams import services as streams
from streams.models import StreamRecording

ROLES = ("anonymous", "stranger", "pending", "friend", "owner")
RECORDING_ID = 4242


def grid(anonymous, stranger, pending, friend, owner) -> dict[str, object]:
    return dict(zip(ROLES, (anonymous, stranger, pending, friend, owner), strict=True))


# route pattern -> [(method, path, JSON body or None, expected per role)]
HTTP_MATRIX: dict[str, list[tuple[str, str, dict | None, dict[str, object]]]] = {
    "api/auth/token/": [
        ("post", "/api/auth/token/", {"username": "alice", "password": "wrong"}, grid(401, 401, 401, 401, 401))
    ],
    "api/auth/logout/": [("post", "/api/auth/logout/", None, grid(401, 200, 200, 200, 200))],
    "api/auth/logout-all/": [("post", "/api/auth/logout-all/", None, grid(401, 200, 200, 200, 200))],
    # The schema describes the API, not anyone's data: public, like the login page.
    "api/schema/": [("get", "/api/schema/", None, grid(200, 200, 200, 200, 200))],
    "api/users/search/": [("get", "/api/users/search/?q=ali", None, grid(401, 200, 200, 200, 200))],
    "api/friends/": [("get", "/api/friends/", None, grid(401, 200, 200, 200, 200))],
    "api/friends/requests/": [("get", "/api/friends/requests/", None, grid(401, 200, 200, 200, 200))],
    "api/friends/request/": [("post", "/api/friends/request/", {"username": "alice"}, grid(401, 201, 200, 200, 400))],
    "api/friends/accept/": [("post", "/api/friends/accept/", {"username": "alice"}, grid(401, 404, 404, 404, 404))],
    "api/friends/reject/": [("post", "/api/friends/reject/", {"username": "alice"}, grid(401, 404, 404, 404, 404))],
    "api/friends/cancel/": [("post", "/api/friends/cancel/", {"username": "alice"}, grid(401, 404, 200, 404, 404))],
    "api/friends/remove/": [("post", "/api/friends/remove/", {"username": "alice"}, grid(401, 404, 404, 200, 404))],
    "api/stream/start/": [("post", "/api/stream/start/", {"denoise": False}, grid(401, 201, 201, 201, 409))],
    "api/stream/stop/": [("post", "/api/stream/stop/", {}, grid(401, 409, 409, 409, 200))],
    # Only one's own live stream: the others are not live themselves.
    "api/stream/denoise/": [("post", "/api/stream/denoise/", {"denoise": False}, grid(401, 409, 409, 409, 200))],
    "api/stream/mute/": [("post", "/api/stream/mute/", {"muted": True}, grid(401, 409, 409, 409, 200))],
    "api/stream/offer/": [
        ("post", "/api/stream/offer/", {"sdp": "v=0", "type": "offer"}, grid(401, 409, 409, 409, 400))
    ],
    "api/stream/listener/<str:username>/offer/": [
        ("post", "/api/stream/listener/alice/offer/", {"sdp": "v=0", "type": "offer"}, grid(401, 403, 403, 404, 404))
    ],
    "api/stream/status/<str:username>/": [("get", "/api/stream/status/alice/", None, grid(401, 403, 403, 200, 200))],
    "api/recordings/": [("get", "/api/recordings/", None, grid(401, 200, 200, 200, 200))],
    "api/recordings/<int:recording_id>/": [
        ("patch", f"/api/recordings/{RECORDING_ID}/", {"title": "Mine now"}, grid(401, 404, 404, 403, 200)),
        ("delete", f"/api/recordings/{RECORDING_ID}/", None, grid(401, 404, 404, 403, 204)),
    ],
    # Merging is the owner's alone; alice's only recording has none before it to merge with (409).
    "api/recordings/<int:recording_id>/merge-previous/": [
        ("post", f"/api/recordings/{RECORDING_ID}/merge-previous/", {}, grid(401, 404, 404, 403, 409))
    ],
    "api/users/<str:username>/recordings/": [
        ("get", "/api/users/alice/recordings/", None, grid(401, 403, 403, 200, 200))
    ],
    "api/ice-servers/": [("get", "/api/ice-servers/", None, grid(401, 200, 200, 200, 200))],
    # Anyone logged in may denoise a file or keep one as a recording (a body without a file: 400); a job only by
    # whoever submitted it, which tests/test_denoise_file_api.py checks with real jobs.
    "api/denoise/": [("post", "/api/denoise/", {}, grid(401, 400, 400, 400, 400))],
    "api/denoise/jobs/<str:job_id>/": [("get", "/api/denoise/jobs/0123abcd/", None, grid(401, 404, 404, 404, 404))],
    "api/recordings/upload/": [("post", "/api/recordings/upload/", {}, grid(401, 400, 400, 400, 400))],
    "login/": [("get", "/login/", None, grid(200, 302, 302, 302, 302))],
    "logout/": [("post", "/logout/", None, grid(302, 302, 302, 302, 302))],
    "register/": [("get", "/register/", None, grid(200, 302, 302, 302, 302))],
    "recordings/<int:recording_id>/audio/": [
        ("get", f"/recordings/{RECORDING_ID}/audio/", None, grid(302, 404, 404, 200, 200)),
        # The compressed copy: the same rule as the WAV.
        ("get", f"/recordings/{RECORDING_ID}/audio/?format=ogg", None, grid(302, 404, 404, 200, 200)),
    ],
    "": [("get", "/", None, grid(200, 200, 200, 200, 200))],
    "search/": [("get", "/search/?q=ali", None, grid(302, 200, 200, 200, 200))],
    "friend-requests/": [("get", "/friend-requests/", None, grid(302, 200, 200, 200, 200))],
    "friends/<slug:action>/": [("post", "/friends/remove/", {"username": "alice"}, grid(302, 302, 302, 302, 302))],
    # Anyone logged in may open a profile to send a request; what it shows is decided by can_access (below).
    "user/<str:username>/": [("get", "/user/alice/", None, grid(302, 200, 200, 200, 200))],
    # Operators' metrics: who is logged in does not matter, only where the request comes from and its bearer
    # token (test_metrics_access_from_elsewhere); the test client is a loopback client and no token is set.
    "metrics": [("get", "/metrics", None, grid(200, 200, 200, 200, 200))],
}

WS_MATRIX: dict[str, tuple[str, dict[str, object]]] = {
    "ws/presence/": ("/ws/presence/", grid(False, True, True, True, True)),
    "ws/stream/<str:username>/": ("/ws/stream/alice/", grid(False, False, False, True, True)),
}


def _routes(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def test_every_http_route_has_expectations_for_every_role():
    routes = {route for route in _routes(get_resolver().url_patterns) if not route.startswith("admin/")}
    assert routes == set(HTTP_MATRIX)


def test_every_websocket_route_has_expectations_for_every_role():
    assert {str(route.pattern) for route in websocket_urlpatterns} == set(WS_MATRIX)


@pytest.fixture
def people(cast, settings, tmp_path):
    """alice is live (without denoise, so no model loads) and has one recording on disk."""
    settings.RECORDINGS_DIR = tmp_path
    (tmp_path / "alice").mkdir()
    with wave.open(str(tmp_path / "alice" / "morning.wav"), "wb") as morning:  # real audio: it is also encoded
        morning.setnchannels(1)
        morning.setsampwidth(2)
        morning.setframerate(48000)
        morning.writeframes(bytes(4800 * 2))
    StreamRecording.objects.create(
        pk=RECORDING_ID, owner=cast["owner"], title="Morning", audio_path="alice/morning.wav", duration=1
    )
    streams.start_stream(cast["owner"], denoise=False)
    return {"anonymous": None, **cast}


def http_cells():
    for requests in HTTP_MATRIX.values():
        for method, path, body, expected in requests:
            for role in ROLES:
                yield pytest.param(method, path, body, role, expected[role], id=f"{method} {path} as {role}")


@pytest.mark.django_db
@pytest.mark.api
@pytest.mark.parametrize(("method", "path", "body", "role", "expected"), list(http_cells()))
def test_http_access(people, method, path, body, role, expected):
    user = people[role]
    if path.startswith("/api/"):
        client = APIClient()
        if user is not None:
            _, key = AuthToken.objects.create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        response = (
            getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)
        )
    else:
        client = Client()
        if user is not None:
            client.force_login(user)
        response = getattr(client, method)(path, body or {})
    assert response.status_code == expected


METRICS_TOKEN = "metrics-scraper-token"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("authorization", "expected"), [(None, 404), ("Bearer wrong", 404), (f"Bearer {METRICS_TOKEN}", 200)]
)
@pytest.mark.parametrize("role", ROLES)
def test_metrics_access_from_elsewhere(people, settings, role, authorization, expected):
    """From another machine, logged in or not, /metrics is not there without the metrics token."""
    settings.METRICS_TOKEN = METRICS_TOKEN
    user = people[role]
    client = Client(REMOTE_ADDR="203.0.113.7")
    if user is not None:
        client.force_login(user)
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    assert client.get("/metrics", **headers).status_code == expected


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", list(WS_MATRIX))
async def test_websocket_access(people, route, role):
    path, expected_by_role = WS_MATRIX[route]
    user = people[role]
    headers = []
    if user is not None:
        _, key = await database_sync_to_async(AuthToken.objects.create)(user=user)
        headers.append((b"authorization", f"Token {key}".encode()))
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await socket.connect(timeout=3)
    await socket.disconnect()
    assert connected is expected_by_role[role]
