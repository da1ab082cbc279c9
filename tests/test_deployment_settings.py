"""A public deployment is safe by settings: `check --deploy` is clean, headers are strict, bad values stop the
server with a sentence that names the setting."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from quietcast import serve, setting_values

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_SITE = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-secret-key-for-the-deploy-check-0123456789abcdefghijklmnop",
    "ALLOWED_HOSTS": "quietcast.example",
    "CSRF_TRUSTED_ORIGINS": "https://quietcast.example",
    "HTTPS": "true",
}


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in PUBLIC_SITE and key != "ICE_SERVERS"}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_deploy_check_is_clean_for_a_site_served_over_https():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PUBLIC_SITE)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_flags_a_public_site_that_forgot_https():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **{**PUBLIC_SITE, "HTTPS": "false"})
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stderr


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("[{oops", "not valid JSON"),
        ('{"urls": "stun:a"}', "must be a JSON list"),
        ('["stun:a"]', "must be an object"),
        ('[{"username": "u"}]', 'needs "urls"'),
        ('[{"urls": "http://a"}]', "not a stun:"),
        ('[{"urls": "turn:a", "password": "p"}]', "unknown keys: password"),
        ('[{"urls": "turn:a", "credential": 5}]', '"credential" must be a string'),
    ],
)
def test_bad_ice_servers_are_refused_naming_the_setting(value, fragment):
    with pytest.raises(ImproperlyConfigured, match="ICE_SERVERS") as refused:
        setting_values.ice_servers(value)
    assert fragment in str(refused.value)


def test_good_ice_servers_are_kept_as_given():
    servers = '[{"urls": ["stun:a:3478", "turn:b"], "username": "u", "credential": "c"}, {"urls": "stuns:c"}]'
    assert setting_values.ice_servers(servers) == [
        {"urls": ["stun:a:3478", "turn:b"], "username": "u", "credential": "c"},
        {"urls": "stuns:c"},
    ]


def test_a_server_with_bad_ice_servers_does_not_start_and_says_why():
    result = manage("check", ICE_SERVERS='{"urls": "stun:a"}')
    assert result.returncode != 0
    assert "ICE_SERVERS must be a JSON list" in result.stderr


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(alice):
    client = Client()
    client.force_login(alice)
    policy = client.get("/")["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


@pytest.mark.django_db
def test_pages_carry_the_usual_security_headers(client):
    response = client.get("/login/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_files_the_server_creates_are_private_to_it(tmp_path):
    script = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='quietcast.settings'; django.setup();"
        "open(os.environ['PROBE'], 'w').close()"
    )
    env = {**os.environ, "PROBE": str(tmp_path / "probe"), "QUIETCAST_VAR_DIR": str(tmp_path / "var")}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    assert (tmp_path / "probe").stat().st_mode & 0o077 == 0
    assert (tmp_path / "var").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("trusted", [True, False])
def test_forwarded_headers_are_trusted_only_behind_a_trusted_proxy(settings, trusted):
    settings.TRUSTED_PROXY = trusted
    assert ("--proxy-headers" in serve.daphne_arguments("127.0.0.1", 8000)) is trusted
