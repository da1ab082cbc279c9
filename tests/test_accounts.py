import pytest
from django.contrib.auth import get_user_model

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PAGES = ["/", "/search/?q=a", "/friend-requests/", "/user/alice/"]


def test_register_logs_you_in_and_lands_on_home(client):
    response = client.post(
        "/register/", {"username": "erin", "password1": PASSWORD, "password2": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert response.context["user"].username == "erin"


def test_register_rejects_a_weak_password_with_a_readable_message(client):
    response = client.post("/register/", {"username": "erin", "password1": "123", "password2": "123"})
    assert response.status_code == 400
    assert b"too short" in response.content
    assert not get_user_model().objects.filter(username="erin").exists()


def test_register_rejects_mismatched_passwords(client):
    response = client.post("/register/", {"username": "erin", "password1": PASSWORD, "password2": PASSWORD + "x"})
    assert response.status_code == 400
    assert b"didn" in response.content  # “The two password fields didn’t match.”


def test_register_rejects_a_taken_username(client, alice):
    response = client.post("/register/", {"username": "alice", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 400
    assert b"already exists" in response.content


def test_login_with_username_and_password(client, alice):
    response = client.post("/login/", {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert response.context["user"] == alice


def test_login_with_a_wrong_password_says_so(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Wrong username or password" in response.content


def test_logout_is_a_post(client, alice):
    client.force_login(alice)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_are_redirected_to_login(client, page):
    response = client.get(page)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_admin_works_for_a_superuser(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(admin)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/friends/friendship/").status_code == 200
    assert client.get("/admin/streams/streamrecording/").status_code == 200


class TestTokenApi:
    pytestmark = pytest.mark.api

    def test_token_for_right_credentials(self, api_client, alice):
        response = api_client().post("/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
        assert response.status_code == 200
        token = response.json()["token"]
        friends = api_client().get("/api/friends/", HTTP_AUTHORIZATION=f"Token {token}")
        assert friends.status_code == 200

    def test_wrong_credentials_are_refused(self, api_client, alice):
        response = api_client().post("/api/auth/token/", {"username": "alice", "password": "x"}, format="json")
        assert response.status_code == 401
        assert response.json() == {"error": "Wrong username or password."}

    def test_missing_password_is_a_400(self, api_client, alice):
        response = api_client().post("/api/auth/token/", {"username": "alice"}, format="json")
        assert response.status_code == 400
        assert response.json()["error"].startswith("password:")

    def test_malformed_json_is_a_400(self, api_client):
        response = api_client().post("/api/auth/token/", "{not json", content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"error": "The request body is not valid JSON."}

    def test_a_bad_token_is_a_401(self, api_client):
        response = api_client().get("/api/friends/", HTTP_AUTHORIZATION="Token not-a-real-token")
        assert response.status_code == 401
        assert "error" in response.json()


def test_register_rejects_an_all_digit_username(client):
    response = client.post("/register/", {"username": "12345", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 400
    assert b"at least one letter" in response.content
