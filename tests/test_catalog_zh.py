"""A catalog written in Chinese (fixtures/catalog_zh) is searchable by its words.

Real parts: the Flipkart-format importer, SQLite, the cleaning rules, the real encoders and the
embedded engine in the test's own folder; the queries run through the storefront's search.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from search.backends import get_backend, reset_backends
from search.request import parse_search_request
from search.services import products_index
from shop.importers import read_catalog
from shop.models import Brand, Category, Product
from shop.services import catalog_import
from shop.signals import indexing_deferred

pytestmark = [pytest.mark.django_db]

CATALOG = Path(settings.BASE_DIR) / "fixtures" / "catalog_zh"


@pytest.fixture(scope="module")
def zh_catalog(django_db_setup, django_db_blocker, tmp_path_factory):
    """The 32 Chinese products imported and indexed once for the module, in an index of their own,
    and deleted afterwards (they are not in the suite's shared index); external id -> product id."""
    backends = settings.SEARCH_BACKENDS
    index_dir = tmp_path_factory.mktemp("zh-index")
    with django_db_blocker.unblock(), override_settings(
        SEARCH_BACKENDS={**backends, "default": {**backends["default"], "INDEX_DIR": index_dir}},
    ):
        reset_backends()
        try:
            summary = catalog_import(read_catalog("flipkart", CATALOG))
            assert summary.created == 32 and not summary.skipped, summary
            report = products_index(product_ids=summary.product_ids)
            assert len(report.indexed) == 32
            get_backend().refresh()
            yield dict(Product.objects.filter(pk__in=summary.product_ids).values_list("external_id", "pk"))
        finally:
            with indexing_deferred():
                Product.objects.filter(external_id__startswith="zh-").delete()
                Brand.objects.filter(name__in=BRANDS).delete()
                for path in sorted(CATEGORIES, key=lambda p: -p.count(">")):  # children before parents
                    Category.objects.filter(path=path).delete()
            reset_backends()


ROWS = list(read_catalog("flipkart", CATALOG))
BRANDS = {r.brand for r in ROWS}
CATEGORIES = {" > ".join(r.category_path[:i + 1]) for r in ROWS for i in range(len(r.category_path))}


def bm25(query: str, ids: dict[str, int]) -> list[str]:
    by_pk = {pk: ext for ext, pk in ids.items()}
    return [by_pk[h.id] for h in get_backend().search_text(query, limit=50)]


def test_the_catalog_imports_with_chinese_titles_categories_and_brands(zh_catalog):
    case = Product.objects.select_related("brand", "category").get(external_id="zh-001")
    assert case.title == "红色硅胶手机壳 适用于iPhone 12"
    assert case.brand.name == "酷壳"
    assert case.category.path == "手机配件 > 手机壳"


@pytest.mark.parametrize("query, expected", [
    ("毛巾", {"zh-005", "zh-006", "zh-007"}),  # towels (the category 毛巾 and the titles' 浴巾 / 毛巾)
    ("手表", {"zh-014", "zh-015"}),
    ("连衣裙", {"zh-010", "zh-011"}),
    ("保温杯", {"zh-017", "zh-018"}),
    ("罗技", {"zh-024", "zh-025"}),  # a brand
])
def test_one_chinese_word_finds_exactly_its_products(zh_catalog, query, expected):
    assert set(bm25(query, zh_catalog)) == expected


@pytest.mark.parametrize("query, first", [
    ("红色 手机壳", "zh-001"),  # the red phone case before other red things and other cases
    ("红色手机壳", "zh-001"),  # the same without a space
    ("黑色手机壳", "zh-002"),
    ("纯棉浴巾", "zh-005"),
    ("男士手表", "zh-014"),
    ("女士手表", "zh-015"),
    ("白色T恤", "zh-009"),
    ("红色保温杯", "zh-018"),
    ("笔记本电脑包", "zh-020"),
    ("我想买一个电饭煲", "zh-027"),  # a sentence
])
def test_several_chinese_words_rank_the_product_with_all_of_them_first(zh_catalog, query, first):
    assert bm25(query, zh_catalog)[0] == first


def test_phone_cases_come_before_other_phone_accessories(zh_catalog):
    # 手机壳 is 手机 ("phone") + 壳 ("case"): the screen protector (手机钢化膜, category 手机配件) has only 手机
    hits = bm25("手机壳", zh_catalog)
    assert set(hits[:3]) == {"zh-001", "zh-002", "zh-003"}
    assert hits[3:] == ["zh-004"]


def test_a_chinese_word_inside_a_longer_one_is_found(zh_catalog):
    # 电脑 ("computer") is inside 笔记本电脑 ("laptop") of the laptop bag's title
    assert "zh-020" in bm25("电脑", zh_catalog)


def test_english_words_in_chinese_titles_are_found(zh_catalog):
    assert bm25("iPhone 12", zh_catalog)[0] == "zh-001"


def test_storefront_search_in_chinese_ranks_by_the_words_not_by_english_only_models(zh_catalog):
    # when: the storefront's hybrid search (BM25, MiniLM text kNN, fused kNN)
    page = parse_search_request({"q": "红色 手机壳"}).run()
    # then: the words decide (search.hybrid.language): the red phone case, the one product holding
    # every word (the match cut-off: other cases and red things hold only some of them);
    # MiniLM's English-only neighbours (watches, pans...) are left out
    assert [p.external_id for p in page.products] == ["zh-001"]
    assert page.total == 1
    # and: one word finds the three cases
    cases = parse_search_request({"q": "手机壳"}).run()
    assert {p.external_id for p in cases.products} == {"zh-001", "zh-002", "zh-003"}
