"""The search backend contract: one suite that every engine must pass.

A backend's test module subclasses :class:`BackendContract` and provides the ``make_backend``
fixture (a callable returning a new client of one empty index); everything else is shared, as
in Wagtail's ``BackendTests``. An engine that cannot support a behaviour skips that test in its
subclass with a reason.

Optional capabilities (``supports_*`` on ``BaseSearchBackend``) are covered here too: each one
a backend declares is checked for what it does, and each one it does not declare must raise
``UnsupportedSearchFeature`` naming the backend and the feature (:data:`CAPABILITIES` lists
them; a test fails when the base class declares one this suite does not know).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from search.backends.base import BaseSearchBackend, SearchDocument, SearchFilters, UnsupportedSearchFeature
from search.backends.retrieval import FusionRequest, FusionSupport, TextRetrieval, VectorRetrieval
from tests.factories import TEST_DIMS, SearchDocumentFactory, unit_vector, vectors_for

# A small hand-made catalog. Words are placed so that each test has exactly one reason to pass.
CATALOG = [
    dict(id=1, title="Cotton Bath Towel", brand="Softline", category_path=["Home Furnishing", "Bath Linen", "Towels"],
         description="Absorbent and quick to dry.", price=499.0, rating=4.2),
    dict(id=2, title="Turkish Hand Towels Set of 4", brand="Bombay Dyeing", category_path=["Home Furnishing", "Bath Linen", "Towels"],
         description="Four soft hand towels.", price=899.0, rating=3.9),
    dict(id=3, title="Striped Beach Umbrella", brand="Sunny", category_path=["Home Furnishing", "Outdoor"],
         description="Shade for sunny days at the sea.", price=1299.0, rating=4.0),
    dict(id=4, title="Analog Wrist Watch", brand="Titan", category_path=["Watches", "Wrist Watches"],
         description="Stainless steel case, water resistant to 50 m.", price=2999.0, rating=4.5),
    dict(id=5, title="Digital Sports Watch", brand="Casio", category_path=["Watches", "Wrist Watches"],
         description="Stopwatch, alarm and backlight.", price=1499.0, rating=4.1),
    dict(id=6, title="Round Wall Clock", brand="Titan", category_path=["Home Decor", "Clocks"],
         description="Silent sweep movement.", price=799.0, rating=3.5),
    dict(id=7, title="Eyelet Door Curtain", brand="Elegance", category_path=["Home Furnishing", "Curtains & Accessories", "Curtains"],
         description="Polyester, pack of two.", price=899.0, rating=3.8),
    dict(id=8, title="Cotton Kurta for Men", brand="Fabindia", category_path=["Clothing", "Men's Clothing"],
         description="Hand woven.", price=1099.0, rating=4.3),
    dict(id=9, title="Ceramic Coffee Mug", brand="", category_path=["Kitchen & Dining", "Mugs"],
         description="Dishwasher safe.", price=None, rating=None, vector_fields=("text", "fused")),
    dict(id=10, title="Bath Robe", brand="Softline", category_path=["Home Furnishing", "Bath Linen", "Bathrobes"],
         description="Plush hooded robe.", price=1999.0, rating=4.0),
    dict(id=11, title="Picnic Blanket", brand="Sunny", category_path=["Home Furnishings", "Blankets"],
         description="Folds into a bag as small as an umbrella.", price=1499.0, rating=3.7),
]
HOME = "Home Furnishing"


def make_catalog(dims: dict[str, int] = TEST_DIMS) -> list[SearchDocument]:
    docs = []
    for spec in CATALOG:
        spec = dict(spec)
        fields = spec.pop("vector_fields", None)
        docs.append(SearchDocumentFactory(**spec, vectors=vectors_for(spec["id"], dims, fields=fields)))
    return docs


def ids_of(hits) -> list[int]:
    return [h.id for h in hits]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


#: Each optional capability: whether a backend declares it, and one call that needs it.
CAPABILITIES: dict[str, tuple[Callable[[BaseSearchBackend], bool], Callable[[BaseSearchBackend], object]]] = {
    "server_fusion": (lambda b: b.supports_server_fusion, lambda b: b.fusion_support()),
    "multi_search": (lambda b: b.supports_multi_search, lambda b: b.search_many([TextRetrieval("bm25", "towel")])),
    "term_analysis": (lambda b: b.supports_term_analysis, lambda b: b.terms("towel")),
    "facets": (lambda b: b.supports_facets, lambda b: b.facets("towel")),
    "highlight": (lambda b: b.supports_highlight, lambda b: b.highlights("towel", [1])),
    "explain": (lambda b: b.supports_explain, lambda b: b.explain("towel", 1)),
}


def same_order_up_to_ties(found, reference) -> bool:
    """Whether ``found`` (fused results) lists ``reference``'s ids in its order, exact score ties in any order."""
    def groups(results, scores):
        out: list[set[int]] = []
        for i, r in enumerate(results):
            if i and abs(scores[i] - scores[i - 1]) <= 1e-6 * max(1.0, abs(scores[i])):
                out[-1].add(r.id)
            else:
                out.append({r.id})
        return out

    scores = [r.score for r in reference]
    return len(found) == len(reference) and groups(found, scores) == groups(reference, scores)


class BackendContract:
    """Behaviour every search backend shares. Subclasses provide ``make_backend``."""

    dims = TEST_DIMS

    @pytest.fixture
    def make_backend(self) -> Callable[[], BaseSearchBackend]:
        raise NotImplementedError("A backend test class must provide the make_backend fixture")

    @pytest.fixture
    def backend(self, make_backend) -> BaseSearchBackend:
        backend = make_backend()
        backend.reset_index()
        return backend

    @pytest.fixture
    def catalog(self, backend) -> dict[int, SearchDocument]:
        docs = make_catalog(self.dims)
        backend.add_bulk(docs)
        backend.refresh()
        return {d.id: d for d in docs}

    # -- BM25 -----------------------------------------------------------------------------------
    def test_text_search_finds_a_product_by_its_title(self, backend, catalog):
        # when
        hits = backend.search_text("curtain")
        # then
        assert ids_of(hits) == [7]

    def test_text_search_finds_a_product_by_its_brand(self, backend, catalog):
        # when
        hits = backend.search_text("casio")
        # then
        assert ids_of(hits) == [5]

    def test_text_search_finds_a_product_by_its_description(self, backend, catalog):
        # when
        hits = backend.search_text("stainless")
        # then
        assert ids_of(hits) == [4]

    def test_title_match_outranks_description_match(self, backend, catalog):
        # given: "umbrella" is in the title of 3 and in the description of 11
        # when
        hits = backend.search_text("umbrella")
        # then
        assert ids_of(hits) == [3, 11]
        assert hits[0].score > hits[1].score > 0

    def test_brand_match_outranks_description_match(self, backend, catalog):
        # given: "Softline" is the brand of 1 and 10, and only in the description of 50
        backend.add_bulk([SearchDocumentFactory(id=50, title="Hand Towel", description="Made by Softline in Kerala.",
                                                vectors=vectors_for(50, self.dims))])
        backend.refresh()
        # when
        hits = backend.search_text("softline")
        # then
        assert set(ids_of(hits)[:2]) == {1, 10}
        assert ids_of(hits)[2] == 50

    def test_plural_query_finds_singular_word_by_stemming(self, backend, catalog):
        # when
        hits = backend.search_text("robes")
        # then
        assert ids_of(hits) == [10]

    def test_towels_finds_towel(self, backend, catalog):
        # when
        hits = backend.search_text("towels")
        # then
        assert {1, 2} <= set(ids_of(hits))

    def test_every_word_counts_and_more_matching_words_rank_higher(self, backend, catalog):
        # when
        hits = backend.search_text("cotton bath towel")
        # then: 1 has all three words; 8 (cotton) and 10 (bath) only one
        assert ids_of(hits)[0] == 1
        assert {8, 10} <= set(ids_of(hits))

    def test_text_search_limit_caps_the_hits(self, backend, catalog):
        # when
        hits = backend.search_text("towel bath watch", limit=2)
        # then
        assert len(hits) == 2

    def test_text_search_without_query_lists_every_document_passing_filters(self, backend, catalog):
        # when
        everything = backend.search_text(None)
        watches = backend.search_text(None, filters=SearchFilters(category="Watches"))
        # then
        assert set(ids_of(everything)) == set(catalog)
        assert set(ids_of(watches)) == {4, 5}

    def test_browsing_without_query_lists_best_rated_first(self, backend, catalog):
        # when
        hits = backend.search_text(None, filters=SearchFilters(category=HOME))
        # then: 4.2, 4.0 / 4.0, 3.9, 3.8; products without a rating would come last
        ratings = [catalog[i].rating for i in ids_of(hits)]
        assert ratings == sorted(ratings, reverse=True) == [4.2, 4.0, 4.0, 3.9, 3.8]

    @pytest.mark.parametrize("query", [
        '"towel', 'towel"', "towel:", "(towel", "towel)", "towel*", "towel\\", "title:towel", "towel AND", "AND towel",
        "towel OR umbrella", "NOT towel", "+towel -cotton", "towel~2", "towel^3", "[towel TO z]", "{towel}", "/towel/",
        "towel!", "towel && ||", "price:[0 TO 10] towel", "id:4 towel",
    ])
    def test_query_syntax_characters_are_treated_as_words(self, backend, catalog, query):
        # when
        hits = backend.search_text(query)
        # then: no parse error, and the word itself still matches
        assert 1 in ids_of(hits)
        assert 4 not in ids_of(hits)

    @pytest.mark.parametrize("query", ['"', ":", "(", ")", "*", "\\", "AND", "OR NOT", "title:", "^", "~", "", "   "])
    def test_query_of_only_syntax_characters_or_stop_words_returns_nothing(self, backend, catalog, query):
        # when
        hits = backend.search_text(query)
        # then
        assert hits == []

    # -- filters inside BM25 --------------------------------------------------------------------------
    def test_category_filter_matches_the_path_and_everything_below_it(self, backend, catalog):
        # when
        home = backend.search_text(None, filters=SearchFilters(category=HOME))
        bath = backend.search_text(None, filters=SearchFilters(category=f"{HOME} > Bath Linen"))
        # then: "Home Furnishings" (11) is another root, not a child of "Home Furnishing"
        assert set(ids_of(home)) == {1, 2, 3, 7, 10}
        assert set(ids_of(bath)) == {1, 2, 10}

    def test_category_filter_restricts_text_search(self, backend, catalog):
        # when
        hits = backend.search_text("bath towel", filters=SearchFilters(category=f"{HOME} > Bath Linen > Bathrobes"))
        # then
        assert ids_of(hits) == [10]

    def test_unknown_category_matches_nothing(self, backend, catalog):
        # when
        hits = backend.search_text("towel", filters=SearchFilters(category="Home"))
        # then: a partial name is not a path prefix
        assert hits == []

    def test_brand_filter_restricts_text_search(self, backend, catalog):
        # when
        hits = backend.search_text("watch clock", filters=SearchFilters(brands=("Titan",)))
        # then
        assert set(ids_of(hits)) == {4, 6}

    def test_several_brands_match_any_of_them(self, backend, catalog):
        # when
        hits = backend.search_text(None, filters=SearchFilters(brands=("Titan", "Casio")))
        # then
        assert set(ids_of(hits)) == {4, 5, 6}

    def test_price_range_is_inclusive_and_drops_products_without_price(self, backend, catalog):
        # when
        hits = backend.search_text(None, filters=SearchFilters(price_min=899, price_max=1499))
        # then
        assert set(ids_of(hits)) == {2, 3, 5, 7, 8, 11}

    def test_open_ended_price_ranges(self, backend, catalog):
        # when
        cheap = backend.search_text(None, filters=SearchFilters(price_max=799))
        dear = backend.search_text(None, filters=SearchFilters(price_min=1999))
        # then
        assert set(ids_of(cheap)) == {1, 6}
        assert set(ids_of(dear)) == {4, 10}

    def test_filters_combine_with_and(self, backend, catalog):
        # when
        hits = backend.search_text("bath", filters=SearchFilters(category=HOME, brands=("Softline",), price_max=1000))
        # then
        assert ids_of(hits) == [1]

    # -- kNN ---------------------------------------------------------------------------------------------
    def test_vector_search_finds_the_nearest_document_first(self, backend, catalog):
        # when
        hits = backend.search_vector("text", catalog[4].vectors["text"], k=3)
        # then
        assert len(hits) == 3
        assert hits[0].id == 4
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].score >= hits[1].score >= hits[2].score

    def test_vector_search_scores_are_cosine_similarities(self, backend, catalog):
        # given
        query = unit_vector(self.dims["image"], "query")
        expected = {i: float(d.vectors["image"] @ query) for i, d in catalog.items() if "image" in d.vectors}
        # when
        hits = backend.search_vector("image", query, k=len(catalog))
        # then
        assert ids_of(hits) == sorted(expected, key=lambda i: -expected[i])
        assert [h.score for h in hits] == pytest.approx([expected[h.id] for h in hits], abs=1e-4)

    def test_vector_search_skips_documents_without_that_vector(self, backend, catalog):
        # given: 9 has no image vector
        # when
        hits = backend.search_vector("image", unit_vector(self.dims["image"], "q"), k=100)
        # then
        assert set(ids_of(hits)) == set(catalog) - {9}

    @pytest.mark.parametrize("filters, expected", [
        (SearchFilters(category=HOME), {1, 2, 3, 7, 10}),
        (SearchFilters(brands=("Titan",)), {4, 6}),
        (SearchFilters(price_min=899, price_max=1499), {2, 3, 5, 7, 8, 11}),
    ])
    def test_filters_apply_inside_vector_search(self, backend, catalog, filters, expected):
        # when
        hits = backend.search_vector("text", catalog[4].vectors["text"], filters=filters, k=100)
        # then
        assert set(ids_of(hits)) == expected

    def test_filtered_vector_search_returns_k_results_when_k_documents_match(self, backend, catalog):
        # given: the query is the watch's vector, far from the home furnishing it is filtered to
        query = catalog[4].vectors["text"]
        # when
        hits = backend.search_vector("text", query, filters=SearchFilters(category=HOME), k=4)
        # then
        assert len(hits) == 4
        assert set(ids_of(hits)) <= {1, 2, 3, 7, 10}
        expected = sorted((1, 2, 3, 7, 10), key=lambda i: -float(catalog[i].vectors["text"] @ query))[:4]
        assert ids_of(hits) == expected

    def test_wrong_vector_dimension_raises_value_error(self, backend, catalog):
        # when / then
        with pytest.raises(ValueError, match=r"'text' has 5 dimensions; the index expects 16"):
            backend.search_vector("text", np.ones(5, np.float32), k=3)

    def test_unknown_vector_field_raises_value_error_listing_the_valid_ones(self, backend, catalog):
        # when / then
        with pytest.raises(ValueError, match=r"Unknown vector field 'colour'; valid fields: text, image, fused"):
            backend.search_vector("colour", np.ones(16, np.float32), k=3)

    def test_adding_a_document_with_a_wrong_dimension_raises_and_writes_nothing(self, backend, catalog):
        # given
        bad = SearchDocumentFactory(id=60, title="Broken", vectors={"text": np.ones(3, np.float32)})
        good = SearchDocumentFactory(id=61, title="Fine", vectors=vectors_for(61, self.dims))
        # when
        with pytest.raises(ValueError, match="dimensions"):
            backend.add_bulk([good, bad])
        backend.refresh()
        # then: the batch is refused as a whole, nothing already indexed is lost
        assert backend.ids() == set(catalog)

    def test_adding_a_document_with_an_unknown_vector_field_raises(self, backend, catalog):
        # when / then
        with pytest.raises(ValueError, match="Unknown vector field 'colour'"):
            backend.add_bulk([SearchDocumentFactory(id=62, vectors={"colour": np.ones(16, np.float32)})])

    # -- writes ------------------------------------------------------------------------------------------
    def test_ids_and_count_describe_the_index(self, backend, catalog):
        # then
        assert backend.count() == len(CATALOG)
        assert backend.ids() == {spec["id"] for spec in CATALOG}

    def test_empty_index_has_no_documents_and_finds_nothing(self, backend):
        # then
        assert backend.count() == 0
        assert backend.ids() == set()
        assert backend.search_text("towel") == []
        assert backend.search_vector("text", unit_vector(16, "q"), k=5) == []

    def test_upsert_replaces_a_document_without_duplicating_it(self, backend, catalog):
        # given
        new = SearchDocumentFactory(id=1, title="Waffle Bath Towel", brand="Softline", category_path=["Home Furnishing", "Bath Linen", "Towels"],
                                    price=599.0, vectors=vectors_for(101, self.dims))
        # when
        backend.add_bulk([new])
        backend.refresh()
        # then
        assert backend.count() == len(CATALOG)
        assert ids_of(backend.search_text("waffle")) == [1]
        assert 1 not in ids_of(backend.search_text("cotton"))
        assert ids_of(backend.search_text(None, filters=SearchFilters(price_min=599, price_max=599))) == [1]
        knn = backend.search_vector("text", new.vectors["text"], k=len(CATALOG))
        assert ids_of(knn).count(1) == 1
        assert knn[0].id == 1 and knn[0].score == pytest.approx(1.0, abs=1e-4)

    def test_upserting_the_same_batch_twice_keeps_one_copy_of_each(self, backend, catalog):
        # when
        backend.add_bulk(list(catalog.values()))
        backend.refresh()
        # then
        assert backend.count() == len(CATALOG)
        assert ids_of(backend.search_text("curtain")) == [7]
        hits = backend.search_vector("fused", catalog[7].vectors["fused"], k=len(CATALOG))
        assert len(ids_of(hits)) == len(set(ids_of(hits))) == len(CATALOG)

    def test_document_that_loses_its_image_vector_leaves_image_search(self, backend, catalog):
        # given
        doc = catalog[1]
        without_photo = SearchDocumentFactory(id=1, title=doc.title, vectors={k: v for k, v in doc.vectors.items() if k != "image"})
        # when
        backend.add_bulk([without_photo])
        backend.refresh()
        # then
        assert 1 not in ids_of(backend.search_vector("image", doc.vectors["image"], k=100))
        assert ids_of(backend.search_vector("text", doc.vectors["text"], k=1)) == [1]

    def test_document_that_gains_an_image_vector_joins_image_search(self, backend, catalog):
        # given: 9 had no photo
        vec = unit_vector(self.dims["image"], "new photo")
        # when
        backend.add_bulk([SearchDocumentFactory(id=9, title="Ceramic Coffee Mug", vectors={**catalog[9].vectors, "image": vec})])
        backend.refresh()
        # then
        assert ids_of(backend.search_vector("image", vec, k=1)) == [9]

    def test_delete_removes_from_every_retriever(self, backend, catalog):
        # when
        backend.delete([4])
        backend.refresh()
        # then
        assert 4 not in backend.ids()
        assert backend.count() == len(CATALOG) - 1
        assert backend.search_text("stainless") == []
        for name in ("text", "image", "fused"):
            assert 4 not in ids_of(backend.search_vector(name, catalog[4].vectors[name], k=100))

    def test_delete_of_unknown_ids_is_ignored(self, backend, catalog):
        # when
        backend.delete([999, 1000])
        backend.refresh()
        # then
        assert backend.count() == len(CATALOG)

    def test_a_deleted_document_can_be_added_again(self, backend, catalog):
        # given
        backend.delete([5])
        # when
        backend.add_bulk([catalog[5]])
        backend.refresh()
        # then
        assert ids_of(backend.search_text("casio")) == [5]
        assert ids_of(backend.search_vector("image", catalog[5].vectors["image"], k=1)) == [5]

    def test_reset_index_drops_everything(self, backend, catalog):
        # when
        backend.reset_index()
        backend.refresh()
        # then
        assert backend.count() == 0
        assert backend.search_vector("text", catalog[1].vectors["text"], k=5) == []

    # -- rebuild (zero-downtime reindex) ---------------------------------------------------------------
    def test_rebuild_swaps_in_the_new_index_when_the_block_succeeds(self, backend, catalog):
        # given
        replacement = [SearchDocumentFactory(id=200, title="Bamboo Towel", vectors=vectors_for(200, self.dims))]
        # when
        with backend.rebuild() as new:
            new.add_bulk(replacement)
            # then: the live index still answers from the old documents during the build
            assert ids_of(backend.search_text("curtain")) == [7]
        # then
        assert backend.ids() == {200}
        assert ids_of(backend.search_text("towel")) == [200]
        assert ids_of(backend.search_vector("image", replacement[0].vectors["image"], k=5)) == [200]

    def test_searches_keep_answering_from_another_thread_during_a_rebuild(self, backend, catalog):
        # given: a shopper searching in a loop while the index is rebuilt in batches
        stop = threading.Event()
        answers: list[list[int]] = []
        errors: list[BaseException] = []

        def shopper():
            while not stop.is_set():
                try:
                    answers.append(ids_of(backend.search_text("towel")) + ids_of(backend.search_vector("text", catalog[1].vectors["text"], k=3)))
                except BaseException as exc:  # noqa: BLE001 - the assertion reports it
                    errors.append(exc)
                time.sleep(0.005)

        thread = threading.Thread(target=shopper)
        thread.start()
        try:
            # when
            with backend.rebuild() as new:
                for start in range(0, len(catalog), 3):
                    new.add_bulk(make_catalog(self.dims)[start:start + 3])
                    time.sleep(0.05)
                before_swap = len(answers)
            time.sleep(0.2)
        finally:
            stop.set()
            thread.join(10)
        # then
        assert errors == []
        assert before_swap > 0 and len(answers) > before_swap
        assert all(1 in a for a in answers)

    def test_exception_inside_rebuild_keeps_the_live_index(self, backend, catalog):
        # when
        with pytest.raises(RuntimeError, match="embedding failed"):
            with backend.rebuild() as new:
                new.add_bulk([SearchDocumentFactory(id=300, title="Half built", vectors=vectors_for(300, self.dims))])
                raise RuntimeError("embedding failed")
        backend.refresh()
        # then
        assert backend.ids() == set(catalog)
        assert backend.search_text("half built") == []

    def test_exception_in_before_swap_keeps_the_live_index(self, backend, catalog):
        # given
        def failing_catch_up(new):
            raise RuntimeError("catalog changed too much")

        # when
        with pytest.raises(RuntimeError, match="catalog changed"):
            with backend.rebuild(before_swap=failing_catch_up) as new:
                new.add_bulk([SearchDocumentFactory(id=300, title="Half built", vectors=vectors_for(300, self.dims))])
        backend.refresh()
        # then
        assert backend.ids() == set(catalog)

    def test_before_swap_writes_reach_the_new_index(self, backend, catalog):
        # given
        def catch_up(new):
            new.add_bulk([SearchDocumentFactory(id=400, title="Saved during the build", vectors=vectors_for(400, self.dims))])

        # when
        with backend.rebuild(before_swap=catch_up) as new:
            new.add_bulk(make_catalog(self.dims))
        # then
        assert backend.ids() == set(catalog) | {400}

    def test_before_swap_runs_while_writes_to_the_live_index_wait(self, backend, catalog):
        # given: a worker writes to the live index while before_swap is running
        late = SearchDocumentFactory(id=500, title="Written during the swap", vectors=vectors_for(500, self.dims))
        writer_done = threading.Event()
        seen_during_before_swap: list[bool] = []

        def worker_write():
            backend.add_bulk([late])
            writer_done.set()

        writer = threading.Thread(target=worker_write)

        def catch_up(new):
            writer.start()
            time.sleep(0.5)
            seen_during_before_swap.append(writer_done.is_set())

        # when
        with backend.rebuild(before_swap=catch_up) as new:
            new.add_bulk(make_catalog(self.dims))
        writer.join(30)
        backend.refresh()
        # then: the write waited for the swap and landed in the new live index (not lost)
        assert seen_during_before_swap == [False]
        assert writer_done.is_set()
        assert 500 in backend.ids()
        assert ids_of(backend.search_text("written during the swap"))[0] == 500

    # -- stored vectors ----------------------------------------------------------------------------------
    def test_stored_vectors_are_returned_by_id(self, backend, catalog):
        # when
        stored = backend.get_vectors("image", [1, 9, 999])
        # then: 9 has no photo, 999 does not exist
        assert set(stored) == {1}
        np.testing.assert_allclose(stored[1], catalog[1].vectors["image"], atol=1e-6)

    def test_stored_vectors_of_an_unknown_field_raise_value_error(self, backend, catalog):
        # when / then
        with pytest.raises(ValueError, match="Unknown vector field 'colour'"):
            backend.get_vectors("colour", [1])

    # -- optional capabilities ------------------------------------------------------------------------------
    def test_this_suite_covers_every_capability_the_base_class_declares(self):
        # then
        declared = {name.removeprefix("supports_") for name in vars(BaseSearchBackend) if name.startswith("supports_")}
        assert declared == set(CAPABILITIES)

    @pytest.mark.parametrize("feature", list(CAPABILITIES))
    def test_a_capability_not_declared_raises_a_clear_error(self, backend, feature):
        declared, call = CAPABILITIES[feature]
        if declared(backend):
            pytest.skip(f"{type(backend).__name__} supports {feature}")
        # when / then
        with pytest.raises(UnsupportedSearchFeature, match=rf"The {type(backend).__name__} search backend .* does not support "
                                                             rf"{feature.replace('_', ' ')}: check `backend.supports_{feature}`"):
            call(backend)

    def test_multi_search_answers_each_retrieval_as_a_single_search_would(self, backend, catalog):
        if not backend.supports_multi_search:
            pytest.skip(f"{type(backend).__name__} has no multi-search")
        # given
        home = SearchFilters(category=HOME)
        asked = [
            TextRetrieval("bm25", "umbrella"),
            VectorRetrieval("text_knn", "text", catalog[4].vectors["text"], k=3),
            TextRetrieval("bm25", "bath", filters=home),
            VectorRetrieval("image_knn", "image", catalog[4].vectors["image"], filters=home, k=4),
            TextRetrieval("bm25", "   "),
        ]
        # when
        lists = backend.search_many(asked)
        # then
        assert [ids_of(hits) for hits in lists] == [
            ids_of(backend.search_text("umbrella")),
            ids_of(backend.search_vector("text", catalog[4].vectors["text"], k=3)),
            ids_of(backend.search_text("bath", filters=home)),
            ids_of(backend.search_vector("image", catalog[4].vectors["image"], filters=home, k=4)),
            [],
        ]
        assert ids_of(lists[0]) == [3, 11] and lists[1][0].id == 4
        assert lists[1][0].score == pytest.approx(1.0, abs=1e-4)

    def test_server_fusion_ranks_as_search_hybrid_fuses_the_same_lists(self, backend, catalog):
        if not backend.supports_server_fusion:
            pytest.skip(f"{type(backend).__name__} does not fuse on its side")
        from search.hybrid.fusion import blend

        # given words and a photo
        support = backend.fusion_support()
        assert isinstance(support, FusionSupport)
        n = len(catalog)
        asked = (TextRetrieval("bm25", "bath towel", limit=n), VectorRetrieval("text_knn", "text", catalog[1].vectors["text"], k=n),
                 VectorRetrieval("image_knn", "image", catalog[3].vectors["image"], k=n))
        lists = {"bm25": backend.search_text("bath towel", limit=n), "text_knn": backend.search_vector("text", catalog[1].vectors["text"], k=n),
                 "image_knn": backend.search_vector("image", catalog[3].vectors["image"], k=n)}
        for method in ("rrf", "linear"):
            weights = {"bm25": 1.0, "text_knn": 1.0, "image_knn": 2.0 if support.weighted_rrf or method == "linear" else 1.0}
            request = FusionRequest(retrievals=asked, method=method, weights=weights, rrf_k=60, window=n)
            if method not in support.methods:
                # when it cannot run the method / then it says so, naming what it runs
                with pytest.raises(ValueError, match=f"does not fuse with '{method}'"):
                    backend.search_fused(request)
                continue
            # when
            fused = backend.search_fused(request)
            # then
            assert same_order_up_to_ties(fused, blend(lists, method=method, weights=weights, rrf_k=60)[:n])

    def test_term_analysis_keeps_the_words_and_drops_stop_words(self, backend):
        if not backend.supports_term_analysis:
            pytest.skip(f"{type(backend).__name__} has no term analysis")
        # when
        terms = backend.terms("The Cotton TOWEL and a Mug")
        # then
        assert terms and all(t == t.lower() for t in terms)
        assert {"the", "and", "a"}.isdisjoint(terms)
        assert any(t.startswith("cotton") for t in terms) and any(t.startswith("towel") for t in terms)
        assert backend.terms("the and of a") == []

    def test_facets_count_the_matching_documents(self, backend, catalog):
        if not backend.supports_facets:
            pytest.skip(f"{type(backend).__name__} has no facets")
        # when
        facets = backend.facets(None, filters=SearchFilters(category=HOME))
        # then: categories one level below the filter, every brand, non-empty price bands
        assert dict(facets["category"]) == {f"{HOME} > Bath Linen": 3, f"{HOME} > Outdoor": 1, f"{HOME} > Curtains & Accessories": 1}
        assert dict(facets["brand"]) == {"Softline": 2, "Bombay Dyeing": 1, "Sunny": 1, "Elegance": 1}
        assert dict(facets["price"]) == {"0-500": 1, "500-1000": 2, "1000-2000": 2}
        assert dict(backend.facets("umbrella")["brand"]) == {"Sunny": 2}

    def test_highlights_mark_the_query_terms(self, backend, catalog):
        if not backend.supports_highlight:
            pytest.skip(f"{type(backend).__name__} has no highlights")
        # when
        marked = backend.highlights("umbrella", [3, 11])
        # then: the title of 3, the description of 11
        assert "<mark>umbrella</mark>" in marked[3]["title"][0].lower()
        assert "<mark>umbrella</mark>" in " ".join(marked[11]["description"]).lower()
        assert backend.highlights("   ", [3]) == {}

    def test_explain_accounts_for_a_bm25_score(self, backend, catalog):
        if not backend.supports_explain:
            pytest.skip(f"{type(backend).__name__} does not explain scores")
        # when
        explained = backend.explain("umbrella", 3)
        # then
        assert explained["value"] > 0 and explained["description"]
