"""API tokens: stored hashed, one per device, revocable one by one or all at once, expiring, and dead after a
password change (with the owner's open presence sockets)."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from quietcast.asgi import application
from tests.live_server import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.api]


def obtain_token(username: str = "alice", password: str = PASSWORD) -> str:
    response = APIClient().post("/api/auth/token/", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["token"]


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def works(token: str) -> bool:
    return with_token(token).get("/api/friends/").status_code == 200


def test_a_token_is_stored_only_as_a_hash(alice):
    token = obtain_token()
    assert works(token)
    stored = AuthToken.objects.get(user=alice)
    assert token not in (stored.digest, stored.token_key)


def test_each_login_is_a_separate_device_with_an_expiry(alice):
    phone, laptop = obtain_token(), obtain_token()
    assert phone != laptop and works(phone) and works(laptop)
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.json()["expiry"]


def test_logging_out_revokes_only_this_device(alice):
    phone, laptop = obtain_token(), obtain_token()
    response = with_token(phone).post("/api/auth/logout/")
    assert response.status_code == 200
    assert not works(phone)
    assert works(laptop)


def test_logging_out_everywhere_revokes_every_token(alice):
    phone, laptop = obtain_token(), obtain_token()
    response = with_token(phone).post("/api/auth/logout-all/")
    assert response.json() == {"status": "logged_out", "revoked": 2}
    assert not works(phone) and not works(laptop)


def test_a_revoked_token_gets_a_json_401(alice):
    token = obtain_token()
    with_token(token).post("/api/auth/logout/")
    response = with_token(token).get("/api/friends/")
    assert response.status_code == 401
    assert response.json()["error"]


def test_an_expired_token_no_longer_works(alice):
    token = obtain_token()
    AuthToken.objects.filter(user=alice).update(expiry=timezone.now() - timedelta(seconds=1))
    assert not works(token)


def test_a_password_change_revokes_every_token(alice):
    token = obtain_token()
    alice.set_password("a-brand-new-passphrase")
    alice.save()
    assert not works(token)
    assert works(obtain_token(password="a-brand-new-passphrase"))


def test_saving_a_user_without_changing_the_password_keeps_tokens(alice):
    token = obtain_token()
    alice.first_name = "Alice"
    alice.save()
    assert works(token)


@pytest.mark.django_db(transaction=True)
async def test_a_password_change_closes_open_presence_sockets(alice):
    token = await database_sync_to_async(obtain_token)()
    socket = WebsocketCommunicator(
        application, "/ws/presence/", headers=[(b"authorization", f"Token {token}".encode())]
    )
    connected, _ = await socket.connect(timeout=3)
    assert connected
    await socket.receive_json_from()

    def change_password() -> None:
        alice.set_password("a-brand-new-passphrase")
        alice.save()

    await database_sync_to_async(change_password)()
    closed = await socket.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4401}


@pytest.mark.django_db(transaction=True)
async def test_a_revoked_token_cannot_open_a_socket(alice):
    token = await database_sync_to_async(obtain_token)()
    await database_sync_to_async(lambda: with_token(token).post("/api/auth/logout/"))()
    socket = WebsocketCommunicator(
        application, "/ws/presence/", headers=[(b"authorization", f"Token {token}".encode())]
    )
    connected, code = await socket.connect(timeout=3)
    assert not connected and code == 4401


def test_logging_in_again_keeps_tokens_and_skips_the_password_check(alice, django_assert_num_queries):
    token = obtain_token()
    alice.last_login = timezone.now()
    with django_assert_num_queries(1):  # the UPDATE of last_login alone, no read of the stored password
        alice.save(update_fields=["last_login"])
    assert works(token)
