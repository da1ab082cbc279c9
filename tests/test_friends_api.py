import pytest
from django.middleware.csrf import get_token
from django.test import RequestFactory

from friends import services
from streams.models import ActiveStream

pytestmark = [pytest.mark.django_db, pytest.mark.api]

FRIEND_ACTIONS = ["request", "accept", "reject", "cancel", "remove"]
ALL_ENDPOINTS = [
    ("get", "/api/users/search/?q=a"),
    ("get", "/api/friends/"),
    ("get", "/api/friends/requests/"),
    *[("post", f"/api/friends/{action}/") for action in FRIEND_ACTIONS],
]


@pytest.mark.parametrize(("method", "url"), ALL_ENDPOINTS)
def test_anonymous_api_calls_get_a_json_401(api_client, method, url):
    response = getattr(api_client(), method)(url, {"username": "x"}, format="json")
    assert response.status_code == 401
    assert "error" in response.json()


def test_search_is_partial_and_case_insensitive_and_never_yourself(api_client, make_user, alice):
    make_user("Alicia")
    make_user("malice")
    make_user("bob")
    response = api_client(alice).get("/api/users/search/?q=ALI")
    assert response.status_code == 200
    assert [row["username"] for row in response.json()["results"]] == ["Alicia", "malice"]


def test_search_returns_at_most_twenty(api_client, make_user, alice):
    for number in range(25):
        make_user(f"listener{number:02}")
    response = api_client(alice).get("/api/users/search/?q=listener")
    assert len(response.json()["results"]) == 20


def test_search_reports_each_friendship_state(api_client, make_user, cast):
    alice = cast["owner"]
    make_user("eve")
    services.send_request(alice, "eve")
    client = api_client(alice)
    states = {
        row["username"]: row["friendship"]
        for query in ("bob", "carol", "dave", "eve")
        for row in client.get(f"/api/users/search/?q={query}").json()["results"]
    }
    assert states == {"bob": "friends", "carol": "none", "dave": "pending_received", "eve": "pending_sent"}


def test_empty_search_returns_nothing(api_client, alice, carol):
    assert api_client(alice).get("/api/users/search/?q=").json() == {"results": []}
    assert api_client(alice).get("/api/users/search/").json() == {"results": []}


def test_sending_a_request_is_pending_and_the_other_side_sees_it(api_client, alice, carol):
    response = api_client(alice).post("/api/friends/request/", {"username": "carol"}, format="json")
    assert response.status_code == 201
    assert response.json() == {"status": "pending"}
    requests = api_client(carol).get("/api/friends/requests/").json()
    assert [entry["username"] for entry in requests["received"]] == ["alice"]
    assert requests["received"][0]["created_at"]
    assert [entry["username"] for entry in api_client(alice).get("/api/friends/requests/").json()["sent"]] == ["carol"]


def test_requesting_someone_who_requested_you_accepts(api_client, cast):
    response = api_client(cast["owner"]).post("/api/friends/request/", {"username": "dave"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    assert services.are_friends(cast["owner"], cast["pending"])


def test_repeating_a_request_reports_the_current_status(api_client, cast):
    client = api_client(cast["pending"])
    response = client.post("/api/friends/request/", {"username": "alice"}, format="json")
    assert (response.status_code, response.json()) == (200, {"status": "pending"})


def test_requesting_a_friend_reports_friends(api_client, cast):
    response = api_client(cast["owner"]).post("/api/friends/request/", {"username": "bob"}, format="json")
    assert (response.status_code, response.json()) == (200, {"status": "friends"})


def test_requesting_yourself_is_a_400(api_client, alice):
    response = api_client(alice).post("/api/friends/request/", {"username": "alice"}, format="json")
    assert response.status_code == 400
    assert "yourself" in response.json()["error"]


def test_requesting_an_unknown_user_is_a_404(api_client, alice):
    response = api_client(alice).post("/api/friends/request/", {"username": "nobody"}, format="json")
    assert response.status_code == 404
    assert "nobody" in response.json()["error"]


@pytest.mark.parametrize("action", FRIEND_ACTIONS)
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{}", "application/json"),
        ('{"username": ["bob"]}', "application/json"),
        ('{"username": null}', "application/json"),
        ('{"username": ', "application/json"),
        ("[1, 2]", "application/json"),
    ],
)
def test_bad_bodies_are_a_json_400(api_client, alice, action, body, content_type):
    response = api_client(alice).post(f"/api/friends/{action}/", body, content_type=content_type)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_accept_makes_a_mutual_friendship(api_client, cast):
    alice, dave = cast["owner"], cast["pending"]
    response = api_client(alice).post("/api/friends/accept/", {"username": "dave"}, format="json")
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert "alice" in [f["username"] for f in api_client(dave).get("/api/friends/").json()["friends"]]
    assert "dave" in [f["username"] for f in api_client(alice).get("/api/friends/").json()["friends"]]


def test_reject_removes_the_request_without_friendship(api_client, cast):
    alice, dave = cast["owner"], cast["pending"]
    response = api_client(alice).post("/api/friends/reject/", {"username": "dave"}, format="json")
    assert (response.status_code, response.json()) == (200, {"status": "rejected"})
    assert not services.are_friends(alice, dave)
    assert api_client(alice).get("/api/friends/requests/").json()["received"] == []


def test_the_sender_can_cancel_a_pending_request(api_client, cast):
    response = api_client(cast["pending"]).post("/api/friends/cancel/", {"username": "alice"}, format="json")
    assert (response.status_code, response.json()) == (200, {"status": "cancelled"})
    assert api_client(cast["owner"]).get("/api/friends/requests/").json()["received"] == []


def test_either_side_can_unfriend(api_client, cast):
    response = api_client(cast["friend"]).post("/api/friends/remove/", {"username": "alice"}, format="json")
    assert (response.status_code, response.json()) == (200, {"status": "removed"})
    assert not services.are_friends(cast["owner"], cast["friend"])


@pytest.mark.parametrize(
    ("actor", "action", "target"),
    [
        ("owner", "accept", "carol"),  # carol never asked
        ("pending", "accept", "alice"),  # the sender cannot accept their own request
        ("owner", "reject", "bob"),
        ("owner", "cancel", "dave"),  # dave's request is to alice, not from her
        ("owner", "remove", "carol"),
        ("owner", "remove", "alice"),
        ("owner", "accept", "nobody"),
    ],
)
def test_nothing_to_act_on_is_a_404(api_client, cast, actor, action, target):
    response = api_client(cast[actor]).post(f"/api/friends/{action}/", {"username": target}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]


def test_friend_list_is_sorted_and_shows_who_is_streaming(api_client, make_user, alice, bob):
    zoe = make_user("zoe")
    services.send_request(alice, "zoe")
    services.accept_request(zoe, "alice")
    amy = make_user("amy")
    services.send_request(amy, "alice")
    services.accept_request(alice, "amy")
    ActiveStream.objects.create(owner=zoe)
    response = api_client(alice).get("/api/friends/")
    assert response.json() == {
        "friends": [
            {"username": "amy", "is_streaming": False},
            {"username": "bob", "is_streaming": False},
            {"username": "zoe", "is_streaming": True},
        ]
    }


def test_pending_requests_are_not_friends(api_client, cast):
    usernames = [f["username"] for f in api_client(cast["owner"]).get("/api/friends/").json()["friends"]]
    assert usernames == ["bob"]


def test_session_post_without_csrf_token_is_a_403(browser_client, alice, carol):
    response = browser_client(alice).post(
        "/api/friends/request/", {"username": "carol"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]


def test_session_post_with_csrf_token_works(browser_client, alice, carol):
    client = browser_client(alice)
    client.get("/")
    csrf_token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/friends/request/",
        {"username": "carol"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf_token,
    )
    assert response.status_code == 201


def test_token_clients_need_no_csrf_token(api_client, alice, carol):
    client = api_client(alice)
    client.enforce_csrf_checks = True
    assert client.post("/api/friends/request/", {"username": "carol"}, format="json").status_code == 201


def test_openapi_schema_is_published(api_client, alice):
    response = api_client(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else None
    body = response.content.decode()
    assert "/api/friends/request/" in body
    assert schema is None or "paths" in schema


def test_get_token_helper_is_importable():
    # Sanity check that CSRF helpers used by the browser tests stay available.
    assert get_token(RequestFactory().get("/"))
