"""Bad input of any kind gets a clear 4xx and changes nothing; the server never answers 500.

Runs on SQLite and again on PostgreSQL (`api` marker), where a NUL byte in a query parameter is an error of the
database driver rather than a harmless miss.
"""

import pytest
from django.test import Client

from streams.models import ActiveStream

pytestmark = [pytest.mark.django_db, pytest.mark.api]

DEEP_JSON = "[" * 2000 + "]" * 2000
DEEP_OBJECT = '{"a":' * 2000 + "1" + "}" * 2000

JSON_ENDPOINTS = [
    ("post", "/api/auth/token/"),
    ("post", "/api/friends/request/"),
    ("post", "/api/friends/accept/"),
    ("post", "/api/stream/start/"),
    ("post", "/api/stream/stop/"),
    ("post", "/api/stream/offer/"),
    ("post", "/api/stream/listener/alice/offer/"),
]


@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize(("method", "url"), JSON_ENDPOINTS)
def test_deeply_nested_json_is_a_400(api_client, alice, bob, method, url, body):
    anonymous = url == "/api/auth/token/"
    client = api_client(None if anonymous else bob)
    response = getattr(client, method)(url, body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert not ActiveStream.objects.exists()


def test_deeply_nested_json_in_a_recording_rename_is_a_400(api_client, alice):
    response = api_client(alice).patch("/api/recordings/1/", DEEP_JSON, content_type="application/json")
    assert response.status_code == 400


NUL_NAME = "al\x00ice"
NUL_API_URLS = [f"/api/stream/status/{NUL_NAME}/", f"/api/users/{NUL_NAME}/recordings/"]


@pytest.mark.parametrize("url", NUL_API_URLS)
def test_a_nul_byte_in_a_username_is_a_4xx_on_the_api(api_client, alice, bob, url):
    response = api_client(bob).get(url)
    assert response.status_code in (400, 404)
    assert response.json()["error"]


def test_a_nul_byte_in_a_listener_offer_path_is_a_4xx(api_client, alice, bob):
    response = api_client(bob).post(f"/api/stream/listener/{NUL_NAME}/offer/", {"sdp": "v=0"}, format="json")
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("endpoint", ["request", "accept", "reject", "cancel", "remove"])
def test_a_nul_byte_in_a_json_username_is_a_4xx(api_client, alice, bob, endpoint):
    response = api_client(bob).post(f"/api/friends/{endpoint}/", {"username": NUL_NAME}, format="json")
    assert response.status_code in (400, 404)
    assert response.json()["error"]


def test_a_search_with_a_nul_byte_is_a_400(api_client, alice, bob):
    response = api_client(bob).get(f"/api/users/search/?q={NUL_NAME}")
    assert response.status_code == 400
    assert "Null characters" in response.json()["error"]


def test_a_nul_byte_in_a_profile_address_is_a_404_page(alice, bob):
    client = Client()
    client.force_login(bob)
    response = client.get(f"/user/{NUL_NAME}/")
    assert response.status_code == 404


def test_a_search_page_with_a_nul_byte_lists_nobody(alice, bob):
    client = Client()
    client.force_login(bob)
    response = client.get("/search/?q=a%00")
    assert response.status_code == 200
    assert response.context["results"] == []


@pytest.mark.parametrize("action", ["request", "accept", "reject", "cancel", "remove"])
def test_a_nul_byte_in_a_friend_form_is_not_a_500(alice, bob, action):
    client = Client()
    client.force_login(bob)
    response = client.post(f"/friends/{action}/", {"username": NUL_NAME})
    assert response.status_code in (302, 400, 404)
