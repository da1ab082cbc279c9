"""Searching is capped per person per minute, on the API and the page together, so nobody can list every
username one letter at a time."""

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.api]


@pytest.fixture(autouse=True)
def search_rate(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login": "30/min", "search": "5/min"},
    }


def test_the_api_refuses_searches_beyond_the_rate_with_a_429(api_client, alice, carol):
    client = api_client(alice)
    codes = [client.get("/api/users/search/?q=c").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    refused = client.get("/api/users/search/?q=c")
    assert refused.json()["error"] and int(refused["Retry-After"]) > 0


def test_the_page_and_the_api_share_one_allowance(api_client, alice, carol):
    for _ in range(5):
        api_client(alice).get("/api/users/search/?q=c")
    page = Client()
    page.force_login(alice)
    response = page.get("/search/?q=c")
    assert response.status_code == 429
    assert "searching too fast" in response.content.decode()


def test_each_person_has_their_own_allowance(api_client, alice, carol):
    for _ in range(5):
        api_client(alice).get("/api/users/search/?q=c")
    assert api_client(carol).get("/api/users/search/?q=a").status_code == 200
