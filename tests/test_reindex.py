"""The reindex service and command: catch-up, state marks that follow the live index, a killed run.

Real parts: a committed SQLite file (``transaction=True``: the ``manage.py reindex`` child
process reads the same rows), the real text encoder, the embedded engine in this test's folder,
tasks in-process at commit (no broker). The killed run is a real ``manage.py reindex`` process
sent SIGKILL while it writes its new build.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection

from search.backends import get_backend, reset_backends
from search.backends.embedded import COMPLETE_FILE, EmbeddedSearchBackend
from search.reindex import RebuildError, index_rebuild
from search.services import products_index
from shop.models import IndexState, Product
from shop.signals import indexing_deferred
from tests.factories import BrandFactory, CategoryFactory, ProductFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The child process loads Django and the text encoder before its first batch.
CHILD_START_TIMEOUT_S = 300


@pytest.fixture
def var_dir(settings, tmp_path) -> Path:
    """A VAR_DIR for this test (and a child process): its own index and media; the encoders' cache shared."""
    with indexing_deferred():  # the catalog is this test's products only (deleted while their photos are reachable)
        Product.objects.all().delete()
    var = tmp_path / "var"
    var.mkdir()
    (var / "models").symlink_to(Path(django_settings.ENCODER_CACHE_DIR), target_is_directory=True)
    Path(django_settings.ENCODER_CACHE_DIR).mkdir(parents=True, exist_ok=True)
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": var / "search-index"}}
    settings.MEDIA_ROOT = var / "media"
    reset_backends()
    yield var
    reset_backends()


def catalog(n: int) -> list[int]:
    """``n`` text-only products, indexed in one batch."""
    with indexing_deferred():
        brand, category = BrandFactory(name="Reindex Test"), CategoryFactory(name="Stationery")
        ids = [ProductFactory(title=f"Ocelot notebook number {i}", description="", brand=brand, category=category).pk for i in range(n)]
    products_index(product_ids=ids)
    return ids


def states() -> dict[int, tuple[str, object]]:
    return {pk: (s, at) for pk, s, at in Product.objects.values_list("pk", "index_state", "indexed_at")}


def found(backend, text: str) -> list[int]:
    backend.refresh()
    return [h.id for h in backend.search_text(text, limit=200)]


def test_a_rebuild_catches_up_with_edits_and_marks_states_only_once_its_build_is_live(var_dir):
    # given an indexed catalog and a product whose indexing task was lost (pending), first in line
    with indexing_deferred():
        waiting = ProductFactory(title="Serval glass ink bottle", description="")
    ids = [waiting.pk] + catalog_more(5)
    live = get_backend()
    edited, deleted = ids[1], ids[2]  # both in the first batch, with the pending product
    seen_during_build: list[tuple] = []
    added: list[int] = []

    def progress(done: int, total: int) -> None:
        if done == 3:  # the first batch (the pending product included) is in the new build only
            seen_during_build.append((Product.objects.get(pk=waiting.pk).index_state, found(live, "serval")))
            product = Product.objects.get(pk=edited)
            product.title = "Margay leather bookmark"
            product.save()  # its own task indexes it into the live index at once (no broker)
            Product.objects.get(pk=deleted).delete()
            added.append(ProductFactory(title="Caracal brass paperweight", description="").pk)

    # when
    report = index_rebuild(batch_size=3, progress=progress)
    # then during the build the live index and the states were untouched
    assert seen_during_build == [(IndexState.PENDING, [])]
    # and afterwards the live index holds the catalog as it is now, every product marked indexed
    assert report.caught_up == [edited, added[0]]
    assert live.ids() == set(Product.objects.values_list("pk", flat=True))
    assert found(live, "serval") == [waiting.pk]
    assert found(live, "margay bookmark") == [edited]
    assert found(live, "caracal paperweight") == added
    assert deleted not in live.ids()
    assert set(Product.objects.values_list("index_state", flat=True)) == {IndexState.INDEXED}
    assert report.marked == Product.objects.count() and report.changed == []


def catalog_more(n: int) -> list[int]:
    """``n`` more text-only products, indexed at once."""
    return [ProductFactory(title=f"Ocelot notebook number {i}", description="").pk for i in range(n)]


def test_reindex_refuses_bad_options_and_an_unusable_backend(var_dir):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        index_rebuild(batch_size=0)
    with pytest.raises(RebuildError, match="The 'nope' search backend cannot be used: No search backend 'nope'"):
        index_rebuild(backend="nope")


def test_a_reindex_killed_midway_leaves_the_live_index_and_the_states_true_and_keep_1_keeps_the_last_complete_build(var_dir):
    # given an indexed catalog and a completed reindex (its build is live; the first build is
    # the complete previous one), then an edit whose task was lost (pending, first in line)
    ids = catalog(41)
    call_command("reindex", verbosity=0)
    with indexing_deferred():
        waiting = Product.objects.get(pk=ids[0])
        waiting.title = "Serval glass ink bottle"
        waiting.save()
    live = get_backend()
    live_build = (var_dir / "search-index" / "products").resolve()
    before = states()
    assert before[waiting.pk][0] == IndexState.PENDING and len(live.ids()) == 41
    assert found(live, "serval") == []

    # when `manage.py reindex` is killed (SIGKILL) while it writes its new build
    child = reindex_process(var_dir, "--batch-size", "2", "--verbosity", "2")
    killed_at = kill_after_line(child, "Written 6 of 41 products")

    # then the dead build is incomplete and partial, the live index is the one before it
    dead = [p for p in (var_dir / "search-index").glob("products-*") if p != live_build and not (p / COMPLETE_FILE).exists()]
    assert len(dead) == 1, sorted(p.name for p in (var_dir / "search-index").iterdir())
    partial = EmbeddedSearchBackend(live.params, dict(live.vector_dims), build_dir=dead[0])
    # (a bulk build writes in batches, so it may hold fewer products than the last line reported)
    assert partial.count() < 41, killed_at
    assert (var_dir / "search-index" / "products").resolve() == live_build
    # and every state is what it was: the product written only into the dead build is still pending
    assert states() == before
    assert found(live, "serval") == []
    assert len(live.ids()) == 41

    # when the next reindex runs, keeping one previous build
    call_command("reindex", "--keep", "1", verbosity=0)
    # then the previous build kept is the last complete one (the live one before), not the dead one
    assert get_backend().previous_builds() == [(live_build.name, True)]
    assert not dead[0].exists()
    assert json.loads((live_build / COMPLETE_FILE).read_text())["completed_at"]
    # and the pending product is now in the live index and marked so
    assert found(get_backend(), "serval") == [waiting.pk]
    assert set(Product.objects.values_list("index_state", flat=True)) == {IndexState.INDEXED}


def reindex_process(var_dir: Path, *args: str) -> subprocess.Popen:
    """``manage.py reindex`` in a child process on this test's database file and folders."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "CELERY_BROKER_URL": "",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "reindex", *args], cwd=REPO_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def kill_after_line(child: subprocess.Popen, wanted: str) -> str:
    """SIGKILL ``child`` as soon as it prints a line starting with ``wanted``; returns what it printed."""
    watchdog = threading.Timer(CHILD_START_TIMEOUT_S, child.kill)
    watchdog.start()
    printed = []
    try:
        for line in child.stdout:
            printed.append(line)
            if line.startswith(wanted):
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        child.wait(30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL and printed and printed[-1].startswith(wanted), "".join(printed)[-3000:]
    return "".join(printed)
