"""Property-based fuzzing of the whole JSON API from its OpenAPI schema: whatever a client sends, the answer is
never a server error, and every status it answers is one the schema documents. Bounded in examples per operation
so the suite stays quick."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from friends import services as friends
from streams import services as streams

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def keep_test_connection():
    """As Django's test client does: requests must not close the connection that holds the test's transaction."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def token(cast, keep_test_connection):
    """alice, live without denoise and with friends in every state, fuzzes the API as herself."""
    streams.start_stream(cast["owner"], denoise=False)
    friends.send_request(cast["owner"], "carol")
    _, key = AuthToken.objects.create(user=cast["owner"])
    return key


@pytest.mark.django_db
@pytest.mark.api
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_request_makes_a_server_error_or_an_undocumented_status(case, token):
    checks = [not_a_server_error, status_code_conformance]
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=checks)
