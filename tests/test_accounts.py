from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PAGES = ["/search/?q=a", "/friend-requests/", "/user/alice/"]


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
    assert "“alice” is already taken" in response.content.decode()


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
    assert client.get("/friend-requests/").status_code == 302


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


def test_an_anonymous_first_visit_gets_the_landing_page(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "removes background noise" in page
    assert 'href="/register/"' in page and 'href="/login/"' in page
    assert '<img src="/static/screenshots/friend-listening.png"' in page


def test_the_landing_page_screenshot_is_a_static_file_from_docs():
    found = finders.find("screenshots/friend-listening.png")
    assert found is not None
    assert Path(found) == Path(settings.BASE_DIR) / "docs" / "friend-listening.png"


def test_a_signed_in_visit_gets_home_not_the_landing_page(client, alice):
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "Hi alice" in page
    assert "removes background noise" not in page


class TestRegisterForm:
    def post(self, client, username="erin", password1=PASSWORD, password2=PASSWORD):
        return client.post("/register/", {"username": username, "password1": password1, "password2": password2})

    def test_a_password_rule_error_goes_under_the_password(self, client):
        response = self.post(client, password1="123", password2="123")
        errors = response.context["form"].errors
        assert "too short" in " ".join(errors["password1"])
        assert "password2" not in errors
        page = response.content.decode()
        assert 'id="id_password1_errors"' in page
        assert 'aria-describedby="id_password1_errors id_password1_helptext"' in page

    def test_a_mismatch_goes_under_the_confirmation(self, client):
        errors = self.post(client, password2=PASSWORD + "x").context["form"].errors
        assert list(errors) == ["password2"]

    def test_the_typed_username_is_kept(self, client):
        page = self.post(client, password1="123", password2="123").content.decode()
        assert 'value="erin"' in page

    def test_passwords_are_kept_when_only_the_username_is_wrong(self, client, alice):
        page = self.post(client, username="alice").content.decode()
        assert page.count(f'value="{PASSWORD}"') == 2

    def test_passwords_are_cleared_when_a_password_is_wrong(self, client):
        page = self.post(client, password2=PASSWORD + "x").content.decode()
        assert PASSWORD not in page

    def test_a_name_differing_only_in_capitals_is_explained(self, client, alice):
        response = self.post(client, username="Alice")
        assert response.status_code == 400
        assert "“Alice” is taken by “alice”" in " ".join(response.context["form"].errors["username"])
        assert not get_user_model().objects.filter(username="Alice").exists()

    def test_the_rules_are_in_view_not_behind_a_link(self, client):
        page = client.get("/register/").content.decode()
        assert "<details" not in page
        assert "Your password must contain at least 8 characters." in page
        assert "once “alice” is taken, so is “Alice”" in page

    def test_fields_tell_browsers_and_password_managers_what_they_are(self, client):
        page = client.get("/register/").content.decode()
        assert 'autocomplete="username"' in page
        assert page.count('autocomplete="new-password"') == 2
        assert 'aria-describedby="id_password1_helptext"' in page
