"""Fusion functions against values computed by hand."""

from __future__ import annotations

import pytest

from search.backends.base import Hit
from search.hybrid.fusion import blend, linear, normalise, rrf


def hits(*pairs: tuple[int, float]) -> list[Hit]:
    return [Hit(i, s) for i, s in pairs]


A, B, C, D = 1, 2, 3, 4
TWO_LISTS = {"bm25": hits((A, 10.0), (B, 5.0)), "text_knn": hits((B, 0.9), (C, 0.8))}


def scores(results) -> dict[int, float]:
    return {r.id: r.score for r in results}


# -- RRF ---------------------------------------------------------------------------------------------
def test_rrf_with_k_60_sums_reciprocal_ranks():
    # when
    fused = rrf(TWO_LISTS, k=60)
    # then: A = 1/61, B = 1/62 + 1/61, C = 1/62
    assert [r.id for r in fused] == [B, A, C]
    assert scores(fused) == pytest.approx({A: 1 / 61, B: 1 / 62 + 1 / 61, C: 1 / 62})


def test_rrf_weights_multiply_each_retrievers_contribution():
    # when
    fused = rrf(TWO_LISTS, weights={"bm25": 2.0, "text_knn": 0.5}, k=60)
    # then: A = 2/61 = 0.03279, B = 2/62 + 0.5/61 = 0.04045, C = 0.5/62 = 0.00806
    assert [r.id for r in fused] == [B, A, C]
    assert scores(fused) == pytest.approx({A: 2 / 61, B: 2 / 62 + 0.5 / 61, C: 0.5 / 62})


def test_rrf_missing_weight_counts_as_one():
    # when
    fused = rrf(TWO_LISTS, weights={"bm25": 3.0}, k=60)
    # then
    assert scores(fused)[C] == pytest.approx(1 / 62)
    assert scores(fused)[A] == pytest.approx(3 / 61)


def test_rrf_constant_k_changes_the_scores():
    # when
    fused = rrf(TWO_LISTS, k=1)
    # then: A = 1/2, B = 1/3 + 1/2, C = 1/3
    assert scores(fused) == pytest.approx({A: 0.5, B: 1 / 3 + 0.5, C: 1 / 3})


def test_rrf_weight_zero_drops_the_retriever():
    # when
    fused = rrf(TWO_LISTS, weights={"text_knn": 0.0}, k=60)
    # then
    assert [r.id for r in fused] == [A, B]
    assert all(p.retriever == "bm25" for r in fused for p in r.parts)


@pytest.mark.parametrize("k", [0, -60])
def test_rrf_rejects_a_non_positive_k(k):
    # when / then
    with pytest.raises(ValueError, match=f"RRF k must be positive, got {k}"):
        rrf(TWO_LISTS, k=k)


def test_rrf_of_nothing_is_empty():
    # then
    assert rrf({}) == []
    assert rrf({"bm25": [], "text_knn": []}) == []


def test_rrf_ties_break_on_the_lower_id():
    # given: A and B swap places between the two lists, so their scores are equal
    rankings = {"bm25": hits((B, 3.0), (A, 2.0)), "text_knn": hits((A, 0.9), (B, 0.8))}
    # when
    fused = rrf(rankings)
    # then
    assert fused[0].score == fused[1].score
    assert [r.id for r in fused] == [A, B]


# -- min-max and z-score normalisation -----------------------------------------------------------------
def test_minmax_maps_the_best_to_one_and_the_worst_to_zero():
    # when
    norm = normalise(hits((A, 10.0), (B, 6.0), (C, 2.0)))
    # then
    assert norm == pytest.approx({A: 1.0, B: 0.5, C: 0.0})


def test_minmax_of_a_single_hit_is_one():
    # then
    assert normalise(hits((A, 7.3))) == {A: 1.0}


def test_minmax_of_all_equal_scores_is_one_for_each():
    # then
    assert normalise(hits((A, 0.4), (B, 0.4), (C, 0.4))) == {A: 1.0, B: 1.0, C: 1.0}


def test_minmax_of_no_hits_is_empty():
    # then
    assert normalise([]) == {}


def test_zscore_centres_on_the_mean_and_is_zero_when_all_equal():
    # when
    norm = normalise(hits((A, 3.0), (B, 1.0)), "zscore")
    flat = normalise(hits((A, 2.0), (B, 2.0)), "zscore")
    # then: mean 2, population std 1
    assert norm == pytest.approx({A: 1.0, B: -1.0})
    assert flat == {A: 0.0, B: 0.0}


def test_unknown_normalisation_raises_with_the_valid_ones():
    # when / then
    with pytest.raises(ValueError, match="Unknown normalisation 'l2'; valid: minmax, zscore"):
        normalise(hits((A, 1.0)), "l2")


# -- linear fusion ---------------------------------------------------------------------------------------
def test_linear_fusion_is_the_weighted_sum_of_minmax_scores():
    # given: bm25 normalises to A 1, B 0.5, C 0; text_knn to C 1, A 0
    rankings = {"bm25": hits((A, 10.0), (B, 6.0), (C, 2.0)), "text_knn": hits((C, 0.9), (A, 0.5))}
    # when
    fused = linear(rankings, weights={"bm25": 0.7, "text_knn": 0.3})
    # then: A = 0.7, B = 0.35, C = 0.3
    assert [r.id for r in fused] == [A, B, C]
    assert scores(fused) == pytest.approx({A: 0.7, B: 0.35, C: 0.3})


def test_linear_fusion_gives_nothing_for_a_retriever_that_missed_the_document():
    # when
    fused = linear({"bm25": hits((A, 5.0), (B, 1.0)), "image_knn": hits((D, 0.7))})
    # then: D only from image_knn (single hit -> 1.0); B is bm25's worst -> 0
    assert scores(fused) == pytest.approx({A: 1.0, D: 1.0, B: 0.0})


def test_linear_ties_break_on_the_best_rank_then_the_id():
    # given: all bm25 scores equal (each normalises to 1.0); D and A also top their lists
    rankings = {"bm25": hits((D, 3.0), (B, 3.0)), "text_knn": hits((A, 0.9), (C, 0.1))}
    # when
    fused = linear(rankings)
    # then: D, B, A all score 1.0; D and A were ranked first somewhere (A has the lower id), B second
    assert [r.score for r in fused[:3]] == [1.0, 1.0, 1.0]
    assert [r.id for r in fused] == [A, D, B, C]


# -- blend and explain -------------------------------------------------------------------------------------
def test_blend_dispatches_to_rrf_with_its_k():
    # then
    assert scores(blend(TWO_LISTS, method="rrf", rrf_k=10)) == pytest.approx(scores(rrf(TWO_LISTS, k=10)))


def test_blend_dispatches_to_linear():
    # then
    assert scores(blend(TWO_LISTS, method="linear", weights={"bm25": 2})) == pytest.approx(scores(linear(TWO_LISTS, weights={"bm25": 2})))


def test_blend_rejects_an_unknown_method_and_lists_the_valid_ones():
    # when / then
    with pytest.raises(ValueError, match="Unknown fusion method 'borda'; valid: rrf, linear"):
        blend(TWO_LISTS, method="borda")


@pytest.mark.parametrize("method", ["rrf", "linear"])
def test_explain_parts_sum_to_the_score(method):
    # given
    rankings = {"bm25": hits((A, 12.0), (B, 4.0), (C, 1.0)), "text_knn": hits((C, 0.8), (A, 0.6)), "image_knn": hits((B, 0.7), (C, 0.2))}
    # when
    fused = blend(rankings, method=method, weights={"bm25": 1.0, "text_knn": 0.5, "image_knn": 2.0})
    # then
    for r in fused:
        explained = r.explain()
        parts = {k: v for k, v in explained.items() if k != "score"}
        assert explained["score"] == pytest.approx(sum(p["contribution"] for p in parts.values()), abs=1e-5)
        assert explained["score"] == pytest.approx(r.score, abs=1e-6)


def test_explain_names_each_retriever_with_raw_score_rank_and_contribution():
    # when
    b = next(r for r in rrf(TWO_LISTS, k=60) if r.id == B)
    # then
    assert b.explain() == {
        "score": round(1 / 62 + 1 / 61, 6),
        "bm25": {"raw": 5.0, "rank": 2, "contribution": round(1 / 62, 6)},
        "text_knn": {"raw": 0.9, "rank": 1, "contribution": round(1 / 61, 6)},
    }


# -- which products a query matches (search.hybrid.floor.matched_ids) --------------------------------------
def test_knn_hits_far_below_the_best_match_are_not_matched_but_bm25_hits_always_are(settings):
    from search.hybrid.floor import matched_ids
    from search.hybrid.pipeline import rankings_blend

    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.5, "image": 0.5, "fused": 0.0}
    settings.SEARCH_EXACT_ENOUGH, settings.SEARCH_KNN_ONLY_MIN_COSINE = 0, {}  # the ratio floor alone (the gates: test_relevance_levers)
    rankings = {
        "bm25": [Hit(7, 3.0)],
        "text_knn": [Hit(1, 0.8), Hit(2, 0.41), Hit(3, 0.39), Hit(7, 0.1)],
        "fused_knn": [Hit(4, 0.9), Hit(5, 0.01)],  # ratio 0: no floor
    }
    assert matched_ids(rankings) == {1, 2, 4, 5, 7}
    # a filtered query measures against the unfiltered best match, so it admits nothing more
    assert matched_ids(rankings, best={"text": 1.0}) == {1, 4, 5, 7}
    # ranking is the blend of the full lists; the floor only removes members
    full = {r.id: r.score for r in rankings_blend(rankings, method="linear", best={"text": 10.0})}
    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.0, "image": 0.0, "fused": 0.0}
    unfloored = {r.id: r.score for r in rankings_blend(rankings, method="linear")}
    assert full == {i: unfloored[i] for i in (4, 5, 7)}


# -- the retriever registry (search.hybrid.retrievers) ----------------------------------------------------------
def test_every_vector_field_has_one_knn_retriever_and_the_settings_name_only_known_retrievers(settings):
    from mlmodels import registry
    from search.hybrid import retrievers

    # given the engines' vector fields and the registry
    fields = set(retrievers.VECTOR_FIELDS) | {"text_e5"}  # and multilingual-e5-small's own field
    # then each field is searched by exactly one kNN retriever, named after it
    assert set(retrievers.KNN_FIELDS.values()) == fields
    assert retrievers.KNN_NAME == {"text": "text_knn", "image": "image_knn", "fused": "fused_knn", "text_e5": "text_e5_knn"}
    assert retrievers.KNN_NAME["text_e5"] == registry.encoder_spec("e5-small").retriever
    # and the default weights only name registered retrievers (or the click prior)
    assert set(settings.SEARCH_WEIGHTS) <= set(retrievers.WEIGHT_KEYS)
    assert set(settings.SEARCH_PHOTO_WEIGHTS_TRAINED_HEAD) <= set(retrievers.WEIGHT_KEYS)
