"""Shared fixtures: the cast of people every access test uses, and clients that authenticate like real ones.

alice is the owner; bob is her friend; dave has asked alice to be friends (pending); carol is a stranger.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from friends import services as friends
from streams import clock
from tests.live_server import PASSWORD


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests create many users; the production hasher is deliberately slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db) -> Callable:
    def create(username: str, password: str = PASSWORD):
        return get_user_model().objects.create_user(username=username, password=password)

    return create


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user, alice):
    user = make_user("bob")
    friends.send_request(alice, "bob")
    friends.accept_request(user, "alice")
    return user


@pytest.fixture
def carol(make_user):
    return make_user("carol")


@pytest.fixture
def dave(make_user, alice):
    user = make_user("dave")
    friends.send_request(user, "alice")
    return user


@pytest.fixture
def cast(alice, bob, carol, dave) -> dict:
    """Everyone, keyed by their role towards alice."""
    return {"owner": alice, "friend": bob, "stranger": carol, "pending": dave}


@pytest.fixture
def api_client() -> Callable[..., APIClient]:
    """An API client that authenticates with `Authorization: Token …`, or anonymously when given no user."""

    def build(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return build


@pytest.fixture
def browser_client() -> Callable[..., Client]:
    """A logged-in browser-like client that enforces CSRF, as a real browser session would."""

    def build(user=None) -> Client:
        client = Client(enforce_csrf_checks=True)
        if user is not None:
            client.force_login(user)
        return client

    return build


class ManualClock:
    """The stream lifecycle's clock, moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def lifecycle_clock(monkeypatch) -> ManualClock:
    manual = ManualClock(timezone.now())
    monkeypatch.setattr(clock, "now", manual.now)
    return manual
