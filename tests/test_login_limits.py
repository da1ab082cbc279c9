"""Guessing passwords is slow and bounded: after a few failures one username from one address is locked out for a
while (login page, admin, API tokens alike), with a message that says when to try again."""

from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.live_server import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.api]


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def token_attempt(password: str, username: str = "alice", address: str = "10.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def page_attempt(password: str, path: str = "/login/", address: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=address).post(path, {"username": "alice", "password": password})


def test_the_api_locks_out_after_the_failure_limit_and_says_when_to_retry(alice):
    assert [token_attempt("wrong").status_code for _ in range(3)] == [401, 401, 429]
    locked = token_attempt(PASSWORD)
    assert locked.status_code == 429
    assert locked.json() == {"error": "Too many failed logins. Try again in 15 minutes."}
    assert locked["Retry-After"] == "900"


def test_the_login_page_locks_out_with_a_readable_page(alice):
    for _ in range(3):
        page_attempt("wrong")
    response = page_attempt(PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins. Try again in 15 minutes." in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_the_admin_login_is_limited_too(alice):
    for _ in range(3):
        page_attempt("wrong", path="/admin/login/")
    assert page_attempt(PASSWORD, path="/admin/login/").status_code == 429


def test_a_lockout_does_not_reach_the_owner_on_another_address_or_other_users(alice, carol):
    for _ in range(3):
        token_attempt("wrong")
    assert token_attempt(PASSWORD, address="10.0.0.2").status_code == 200
    assert token_attempt(PASSWORD, username="carol").status_code == 200


def test_the_lockout_ends_after_the_cool_off(alice):
    for _ in range(3):
        token_attempt("wrong")
    later = timezone.now() + timedelta(minutes=16)
    # django-axes reads the time through these two names.
    with mock.patch("axes.attempts.now", return_value=later), mock.patch("axes.handlers.proxy.now", return_value=later):
        assert token_attempt(PASSWORD).status_code == 200


def test_many_token_requests_from_one_address_are_throttled(settings, alice):
    settings.AXES_FAILURE_LIMIT = 1000
    codes = [token_attempt("wrong", username=f"nobody{n}").status_code for n in range(31)]
    assert codes[:30] == [401] * 30
    assert codes[30] == 429
