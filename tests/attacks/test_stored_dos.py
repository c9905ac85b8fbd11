"""Shoppers' queries cannot take the staff analytics page down (issue 11, point 8).

60 searches containing ``$...$`` made ``/staff/analytics/`` answer 500 for every period: the top
queries chart handed them to matplotlib, which read them as mathtext and raised on bad math.
Here the impressions are real rows in the real tables, and the page is rendered by a real
gunicorn process with the production settings, for a signed-in superuser, for every period.
"""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.utils import timezone

from search.clicks.analytics_views import PERIODS
from search.clicks.models import SearchImpression
from tests.attacks.servers import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

#: Bad mathtext, unbalanced braces, unknown commands, and markup: each a query shoppers typed.
HOSTILE_QUERIES = [
    r"$\frac{1}{$ towel", r"$x^{$", r"$\undefinedcommand$", r"price $5 to $10", r"$$", "$" * 40,
    r"\$\mathrm{\\}$", "<script>alert('x')</script>", "--> <b>bold</b> <!--", "towel & co",
]


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(kind="gunicorn")


@pytest.fixture
def superuser_cookie(server, django_user_model) -> dict[str, str]:
    """A signed-in session for a superuser, made with the server's SECRET_KEY (as its login would make it)."""
    return session_cookie(server, django_user_model.objects.create_superuser("root", password="pw-root"))


@pytest.fixture
def hostile_searches():
    """60 searches on page 1 with text queries, all of them hostile, within the last day."""
    now = timezone.now()
    SearchImpression.objects.bulk_create(
        SearchImpression(query=HOSTILE_QUERIES[i % len(HOSTILE_QUERIES)], product_ids=[1, 2, 3], total=i % 3, page=1,
                         session_hash=f"{i:064x}", created=now - timedelta(minutes=i))
        for i in range(60)
    )


@pytest.mark.parametrize("days", PERIODS)
def test_the_analytics_page_shows_hostile_queries_as_plain_text(server, superuser_cookie, hostile_searches, days):
    # when
    response = server.get(f"/staff/analytics/?days={days}", headers=superuser_cookie)
    # then
    assert response.status_code == 200, response.text[:2000]
    page = response.text
    assert "<svg" in page and "Top queries" in page
    for query in HOSTILE_QUERIES:
        assert f"<td>{html.escape(query)}</td>" in page, query  # the table shows it escaped
    assert "<script>alert" not in page and "<b>bold</b>" not in page
