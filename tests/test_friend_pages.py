import re
from datetime import timedelta

import pytest
from django.utils import timezone

from streams.models import ActiveStream

pytestmark = pytest.mark.django_db


def csrf_post(client, url, data):
    client.get("/")
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}, follow=True)


def test_home_lists_friends_in_the_sidebar_with_a_status_slot(browser_client, cast):
    page = browser_client(cast["owner"]).get("/").content.decode()
    assert 'data-status-for="bob"' in page
    assert 'data-status-for="carol"' not in page
    assert 'data-status-for="dave"' not in page
    assert "Go to my page" in page


def test_nav_shows_the_pending_request_count(browser_client, cast):
    page = browser_client(cast["owner"]).get("/").content.decode()
    assert '<span class="count" aria-label="1 pending">1</span>' in page


def test_search_page_finds_people_and_offers_the_right_action(browser_client, cast):
    page = browser_client(cast["owner"]).get("/search/?q=a").content.decode()
    assert "carol" in page and "Add friend" in page
    assert "dave" in page and "Accept request" in page
    assert ">alice<" not in page


def test_search_page_with_no_match_says_so(browser_client, alice):
    page = browser_client(alice).get("/search/?q=zzz").content.decode()
    assert "Nobody matches" in page


def test_add_friend_from_the_search_page(browser_client, cast):
    response = csrf_post(
        browser_client(cast["stranger"]), "/friends/request/", {"username": "alice", "next": "/search/?q=al"}
    )
    assert response.redirect_chain[-1][0] == "/search/?q=al"
    assert "Friend request sent to alice." in response.content.decode()


def test_requests_page_accepts_and_rejects(browser_client, cast):
    client = browser_client(cast["owner"])
    page = client.get("/friend-requests/").content.decode()
    assert "dave" in page
    response = csrf_post(client, "/friends/accept/", {"username": "dave"})
    assert "You and dave are now friends." in response.content.decode()


def test_a_friend_action_that_cannot_be_done_shows_a_message_not_an_error(browser_client, cast):
    client = browser_client(cast["owner"])
    response = csrf_post(client, "/friends/accept/", {"username": "carol"})
    assert response.status_code == 200
    assert "carol has not sent you a friend request." in response.content.decode()
    response = csrf_post(client, "/friends/dance/", {"username": "carol"})
    assert "That friend action is not possible." in response.content.decode()
    response = csrf_post(client, "/friends/request/", {"username": "nobody"})
    assert "There is no user called" in response.content.decode()


def test_friend_actions_never_redirect_off_site(browser_client, cast):
    client = browser_client(cast["owner"])
    response = csrf_post(client, "/friends/accept/", {"username": "dave", "next": "https://evil.example/"})
    assert response.redirect_chain[-1][0] == "/friend-requests/"


def test_friend_action_without_csrf_is_refused(browser_client, cast):
    response = browser_client(cast["owner"]).post("/friends/accept/", {"username": "dave"})
    assert response.status_code == 403


def test_a_strangers_page_says_not_friends_and_offers_add_friend(browser_client, cast):
    page = browser_client(cast["stranger"]).get("/user/alice/").content.decode()
    assert "You and alice are not friends" in page
    assert "Add friend" in page
    assert 'id="recordings-section"' not in page
    assert 'id="stream-section"' not in page


def test_a_pending_friend_sees_no_stream_or_recordings(browser_client, cast):
    page = browser_client(cast["pending"]).get("/user/alice/").content.decode()
    assert "You asked alice to be friends" in page
    assert 'id="recordings-section"' not in page


def test_a_friends_page_shows_stream_and_recordings_sections(browser_client, cast):
    page = browser_client(cast["friend"]).get("/user/alice/").content.decode()
    assert 'id="stream-section"' in page
    assert 'id="recordings-section"' in page
    assert "Unfriend" in page


def test_my_page(browser_client, alice):
    page = browser_client(alice).get("/user/alice/").content.decode()
    assert "My page" in page
    assert 'id="recordings-section"' in page


def test_unknown_user_page_is_a_404(browser_client, alice):
    assert browser_client(alice).get("/user/nobody/").status_code == 404


def test_a_live_page_shows_how_long_the_stream_has_been_live_before_any_script_runs(browser_client, cast):
    ActiveStream.objects.create(owner=cast["owner"], started_at=timezone.now() - timedelta(seconds=75))
    for viewer in (cast["owner"], cast["friend"]):
        page = browser_client(viewer).get("/user/alice/").content.decode()
        assert re.search(r"data-stream-timer>01:1[5-9]<", page)
    ActiveStream.objects.all().delete()
    assert "data-stream-timer>00:00<" in browser_client(cast["friend"]).get("/user/alice/").content.decode()
