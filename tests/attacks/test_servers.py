"""The attack tests' servers start with production settings on loopback and answer over HTTP."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_gunicorn_with_production_settings_answers_json_404s_without_debug(server_factory):
    # given
    server = server_factory(kind="gunicorn")
    # when
    response = server.get("/api/no-such-endpoint")
    # then
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert server.url.startswith("http://127.0.0.1:")
