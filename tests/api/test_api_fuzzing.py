"""Schemathesis fuzzes every operation of the OpenAPI schema: no input may cause a 5xx.

Requests go to the real Django WSGI application in-process (real SQLite, real encoders for the
queries that reach them), signed in as merchant A's staff so that writes get past the
permission checks and reach validation. Hypothesis generates a bounded number of examples per
operation (``EXAMPLES``), valid and invalid ones.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

#: Examples per operation (about 15 operations): keeps the whole run under a minute on 2 cores.
EXAMPLES = 25

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """The WSGI handler closes the database connection after each request; inside a test that
    would end the test's transaction. Django's own test client disconnects the same signal."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.REST_FRAMEWORK = {  # fuzzing is not a flood: lift the rate limits for this test
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {k: "100000/minute" for k in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]},
    }


@pytest.fixture
def merchant_token(world) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=world.users["merchant_a"])[0].key


# Loaded when the module is collected, from the schema endpoint itself (no database needed).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_causes_a_server_error(case, merchant_token):
    case.call_and_validate(
        headers={"Authorization": f"Token {merchant_token}"},
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
    )
