"""Shared fixtures: a real sample of the Flipkart catalog, imported and indexed with the real models."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
from django.conf import settings

from tests.attacks.servers import redis_url  # noqa: F401 - a pytest fixture: a real redis-server on a free loopback port

SAMPLE_PER_CATEGORY = 9  # 7 top-level categories -> 63 products


def pytest_sessionstart(session) -> None:
    """Stop at once, in plain words, when the shared data folder is not where CATALOG_DIR points
    (the suite tests real catalogs; without them most tests would error one by one)."""
    wanted = Path(settings.CATALOG_DIR) / "flipkart" / "products.csv"
    if not wanted.is_file():
        pytest.exit(f"No catalog at CATALOG_DIR={settings.CATALOG_DIR} ({wanted} is missing). Point CATALOG_DIR at the shared "
                    "data folder, e.g. `make test CATALOG_DIR=/path/to/shared/data` (README: 'Two commands').", returncode=4)


@pytest.fixture(autouse=True)
def _photo_search_budget_reset():
    """Every test starts with the photo-search rate limit of the test client's address unused
    (the storefront form and the API share it; tests that test the limit set their own rates).
    The counters live in the ``state`` cache (shop.state)."""
    from shop.api.throttles import PhotoSearchAnonThrottle
    from shop.state import state_cache

    throttle = PhotoSearchAnonThrottle()
    state_cache().delete(throttle.cache_format % {"scope": throttle.scope, "ident": "127.0.0.1"})
    yield


def flipkart_dir() -> Path:
    return Path(settings.CATALOG_DIR) / "flipkart"


def sample_flipkart_ids(per_category: int = SAMPLE_PER_CATEGORY) -> list[str]:
    """A deterministic sample of real Flipkart products with photos and prices, across all 7 categories.

    Towels are always included (the "cotton bath towel" test needs them).
    """
    by_root: dict[str, list[str]] = defaultdict(list)
    towels = []
    with (flipkart_dir() / "products.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if not rec["discounted_price"] or not (flipkart_dir() / "images" / rec["image"]).is_file():
                continue
            root = rec["product_category_tree"].strip('["').split(">>")[0].strip()
            if "towel" in rec["product_name"].lower() and len(towels) < 4:
                towels.append(rec["uniq_id"])
            elif len(by_root[root]) < per_category:
                by_root[root].append(rec["uniq_id"])
    return towels + [i for ids in by_root.values() for i in ids]


@pytest.fixture(scope="session")
def indexed_catalog(django_db_setup, django_db_blocker):
    """The Flipkart sample imported and indexed once per test session (real models, real photos)."""
    from search.services import products_index
    from shop.importers import read_catalog
    from shop.services import catalog_import

    wanted = set(sample_flipkart_ids())
    with django_db_blocker.unblock():
        rows = [r for r in read_catalog("flipkart", flipkart_dir()) if r.external_id in wanted]
        summary = catalog_import(rows)
        products_index(product_ids=summary.product_ids)
    return summary


@pytest.fixture(scope="module")
def torch_encoder(request):
    """The torch encoder named by the test module's ``ENCODER_KIND`` (``"image"`` or ``"text"``), one per run."""
    from tests.encoders import torch_encoder as loaded

    return loaded(request.module.ENCODER_KIND)


@pytest.fixture(scope="module")
def onnx_encoder(request):
    """The ONNX Runtime encoder named by ``ENCODER_KIND``, the first to export into its own folder."""
    from tests.encoders import onnx_encoder as loaded

    return loaded(request.module.ENCODER_KIND)
