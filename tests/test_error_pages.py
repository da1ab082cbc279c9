"""Refusals and failures: pages get the site's layout, a plain explanation and a way back; the API keeps its
`{"error": ...}` answers."""

import pytest
from django.test import Client

from streams.models import StreamRecording

pytestmark = pytest.mark.django_db

HOME_LINK = '<a class="button primary" href="/">Back to Home</a>'
START_LINK = '<a class="button primary" href="/">Go to the start page</a>'


@pytest.fixture
def recording(alice):
    return StreamRecording.objects.create(owner=alice, title="Morning walk", audio_path="a.wav", duration=1.0)


@pytest.fixture
def failing_views(settings):
    settings.ROOT_URLCONF = "tests.error_urls"


def assert_site_page(response, status: int, title: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert f"<h1>{title}</h1>" in page
    assert '<link rel="stylesheet" href="/static/css/quietcast.css">' in page
    assert '<a class="brand" href="/">Quietcast</a>' in page
    return page


def test_a_stranger_opening_a_recording_link_gets_the_not_found_page(browser_client, cast, recording):
    response = browser_client(cast["stranger"]).get(f"/recordings/{recording.pk}/audio/")
    page = assert_site_page(response, 404, "Nothing here")
    assert "not shared with you" in page
    assert HOME_LINK in page
    assert '<nav aria-label="Main">' in page  # the stranger's own navigation, as on every page


def test_an_unknown_user_page_is_the_not_found_page(browser_client, alice):
    page = assert_site_page(browser_client(alice).get("/user/nobody/"), 404, "Nothing here")
    assert HOME_LINK in page


def test_an_anonymous_visitor_is_pointed_at_the_start_page(client):
    page = assert_site_page(client.get("/no-such-page/"), 404, "Nothing here")
    assert START_LINK in page
    assert HOME_LINK not in page
    assert '<nav aria-label="Account">' in page


def test_the_api_still_answers_json_for_an_unknown_address(api_client, alice):
    response = api_client(alice).get("/api/no-such-endpoint/")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found."}


def test_the_api_still_answers_json_for_a_hidden_recording(api_client, cast, recording):
    response = api_client(cast["stranger"]).delete(f"/api/recordings/{recording.pk}/")
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


def test_the_api_still_answers_json_for_a_refusal(api_client, cast, recording):
    response = api_client(cast["friend"]).delete(f"/api/recordings/{recording.pk}/")
    assert response.status_code == 403
    assert set(response.json()) == {"error"}


def test_a_refused_page_is_the_forbidden_page(failing_views, browser_client, alice):
    page = assert_site_page(browser_client(alice).get("/broken/refuses/"), 403, "Not for you")
    assert HOME_LINK in page


def test_a_malformed_request_is_the_bad_request_page(failing_views, client):
    page = assert_site_page(client.get("/broken/rejects/"), 400, "That request did not make sense")
    assert START_LINK in page


def test_a_form_with_a_stale_csrf_token_says_what_to_do(browser_client, cast):
    response = browser_client(cast["owner"]).post("/friends/request/", {"username": "carol"})
    page = assert_site_page(response, 403, "This form has expired")
    assert "reload the page" in page
    assert HOME_LINK in page


def test_a_crash_is_the_server_error_page_without_touching_the_database(
    failing_views, alice, django_assert_num_queries
):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    with django_assert_num_queries(0):
        response = client.get("/broken/fails/")
    page = assert_site_page(response, 500, "Something went wrong on our side")
    assert START_LINK in page
    # Rendered without the request: no navigation that would need the session, and no traceback.
    assert "<nav" not in page
    assert "A bug." not in page and "Traceback" not in page


def test_a_crash_in_the_api_is_json(failing_views, alice):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.get("/api/broken/fails/")
    assert response.status_code == 500
    assert response.json() == {"error": "The server failed to answer this request."}
