"""The indexer's state marks wait out a database another writer holds (SQLite, the default).

A real second connection to this run's SQLite test file takes the write lock (``BEGIN
IMMEDIATE``) while the indexer records its marks, for longer than the connection's busy
timeout (lowered here to 0.1 s so the test is short; the default is 20 s).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import pytest
from django.db import connection

from search.services import IndexReport, index_states_record
from shop.models import IndexState, Product
from shop.signals import indexing_deferred
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the lock holder is another connection: rows must be committed


@pytest.fixture
def short_busy_timeout():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock; PostgreSQL locks rows, not the file")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 100")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {int(connection.settings_dict['OPTIONS']['timeout'] * 1000)}")


def hold_write_lock(seconds: float) -> threading.Thread:
    """Another connection takes the database's write lock for ``seconds``; returns once it holds it."""
    held = threading.Event()

    def run() -> None:
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(seconds)
            other.execute("COMMIT")
        finally:
            other.close()

    thread = threading.Thread(target=run)
    thread.start()
    held.wait(10)
    return thread


def test_the_marks_are_tried_again_while_another_writer_holds_the_database(short_busy_timeout, caplog):
    # given: a product the engine has just written (version read with it)
    with indexing_deferred():
        product = ProductFactory(title="Busy Lamp")
    version = Product.objects.get(pk=product.pk).index_version
    # when: another writer holds the lock past the busy timeout while the marks are recorded
    holder = hold_write_lock(0.8)
    with caplog.at_level(logging.WARNING, logger="search.services"):
        report = index_states_record(IndexReport(indexed=[product.pk], seen={product.pk: version}))
    holder.join()
    # then: marked indexed after waiting, with the waits logged
    assert report.indexed == [product.pk]
    assert Product.objects.get(pk=product.pk).index_state == IndexState.INDEXED
    assert "database busy, try 1 of 5" in caplog.text

