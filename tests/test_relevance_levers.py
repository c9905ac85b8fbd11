"""The relevance levers of the hybrid pipeline: the match cut-off (membership), query-adaptive
kNN weights, the learned re-ranker, and ``evaluate --clicks`` on real CrowdFlower data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from search.backends._bm25 import BM25Index
from search.backends.base import FusedResult, Hit, ScorePart, SearchDocument
from search.backends.retrieval import FusionSupport, TextRetrieval, VectorRetrieval
from search.evaluation.membership import match_quality
from search.hybrid.adaptive import adaptive_weights, has_identifier
from search.hybrid.compile import why_not_compiled
from search.hybrid.floor import matched_ids
from search.hybrid.pipeline import rankings_blend
from search.hybrid.rerank import FEATURES, ArtefactError, Reranker, candidate_features, train_reranker
from search.hybrid.rule import hybrid_rule

TOWELS = [
    SearchDocument(1, title="Mafatlal Cotton Bath Towel", category_path=["Home Furnishing", "Bath Linen", "Towels"]),
    SearchDocument(2, title="Cotonex Cotton Kitchen Linen Set", category_path=["Home Furnishing", "Kitchen & Dining Linen"]),
    SearchDocument(3, title="Hair Towel Wrap", description="soft microfibre"),
    SearchDocument(4, title="Bath mat", description="100% cotton, anti-skid"),
]


# -- the match cut-off: BM25 term coverage ----------------------------------------------------------
def test_bm25_hits_report_the_share_of_the_query_terms_each_product_holds(tmp_path):
    # given: a real tantivy index
    index = BM25Index(tmp_path / "bm25", {"title": 3.0, "description": 1.0})
    index.write(TOWELS, [])
    # when
    hits = {h.id: h.coverage for h in index.search("cotton bath towels", None, 10)}
    # then: stemmed, any text field counts, stop words are not terms
    assert hits == {1: 1.0, 2: pytest.approx(1 / 3), 3: pytest.approx(1 / 3), 4: pytest.approx(2 / 3)}
    assert {h.id: h.coverage for h in index.search("the towel", None, 10)} == {1: 1.0, 3: 1.0}


def test_match_cut_off_keeps_bm25_hits_holding_every_term_and_knn_hits_near_the_best():
    rankings = {
        "bm25": [Hit(1, 9.0, 1.0), Hit(4, 5.0, 2 / 3), Hit(2, 2.0, 1 / 3)],
        "text_knn": [Hit(1, 0.90), Hit(5, 0.75), Hit(6, 0.70)],  # 0.8 x 0.90 = 0.72
    }
    assert matched_ids(rankings, ratios={"text": 0.8}, min_coverage=1.0) == {1, 5}
    assert matched_ids(rankings, ratios={"text": 0.8}, min_coverage=0.6) == {1, 4, 5}
    assert matched_ids(rankings, ratios={"text": 0.5}, min_coverage=0.0) == {1, 2, 4, 5, 6}
    # an engine that reports no coverage keeps its BM25 hits (nothing is dropped on a guess)
    assert matched_ids({"bm25": [Hit(7, 1.0)]}, ratios={}, min_coverage=1.0) == {7}


def test_every_hit_of_bm25_over_a_translation_is_a_match():
    # a dictionary's alternative glosses ("pot pan" for 锅): no product holds them all, so the
    # typed words' cut-off does not apply to the translated list; it still applies to BM25's
    rankings = {"bm25": [Hit(1, 9.0, 1.0), Hit(2, 2.0, 0.5)], "bm25_translated": [Hit(3, 4.0, 0.5), Hit(4, 1.0, 0.25)]}
    assert matched_ids(rankings, ratios={}, min_coverage=1.0) == {1, 3, 4}
    assert matched_ids(rankings, ratios={}, min_coverage=1.0, weights={"bm25_translated": 0.0}) == {1}


def test_the_cut_off_and_adaptive_weights_are_never_compiled_into_an_engine_request():
    retrievals = [TextRetrieval(name="bm25", query="towel"), VectorRetrieval(name="text_knn", field="text", vector=np.ones(3), k=10)]
    support = FusionSupport(methods=frozenset({"rrf", "linear"}), weighted_rrf=True, max_window=10_000)
    no_floor = {"text": 0.0, "fused": 0.0, "text_e5": 0.0}
    off = {"knn_min_ratio": no_floor, "exact_boost": 0.0, "exact_enough": 0, "knn_only_min_cosine": {}}  # nothing reads coverage
    assert why_not_compiled(hybrid_rule(**off, min_coverage=0.0, adaptive=False), retrievals, support) is None
    assert "cut-off" in why_not_compiled(hybrid_rule(**off, min_coverage=1.0), retrievals, support)
    assert "adaptive" in why_not_compiled(hybrid_rule(**off, min_coverage=0.0, adaptive=True), retrievals, support)
    assert "exact-match boost" in why_not_compiled(hybrid_rule(**{**off, "exact_boost": 1.0}, min_coverage=0.0), retrievals, support)
    assert "kNN-only" in why_not_compiled(hybrid_rule(**{**off, "exact_enough": 24}, min_coverage=0.0), retrievals, support)
    assert "kNN-only" in why_not_compiled(hybrid_rule(**{**off, "knn_only_min_cosine": {"text": 0.4}}, min_coverage=0.0), retrievals, support)


# -- kNN-only hits and exact matches ---------------------------------------------------------------------------
#: "samsung" on the Flipkart demo, in small: one product holds the word, its neighbours in meaning are far.
SAMSUNG = {
    "bm25": [Hit(1, 25.0, 1.0)],
    "text_knn": [Hit(1, 0.36), Hit(2, 0.35), Hit(3, 0.34)],  # a USB hub for Samsung phones, then watches
    "text_e5_knn": [Hit(1, 0.842), Hit(4, 0.821)],  # then a pizza cutter
}


def test_knn_only_hits_need_an_absolute_cosine_while_some_product_holds_every_word():
    floors = {"text": 0.8, "text_e5": 0.97}
    # a ratio to the best cosine admits the weak neighbours; the absolute floors do not
    assert matched_ids(SAMSUNG, ratios=floors, knn_only_min_cosine={}) == {1, 2, 3, 4}
    assert matched_ids(SAMSUNG, ratios=floors, knn_only_min_cosine={"text": 0.40, "text_e5": 0.83}) == {1}
    # a close neighbour still counts
    close = {**SAMSUNG, "text_knn": [Hit(5, 0.62), *SAMSUNG["text_knn"]]}
    assert matched_ids(close, ratios={"text": 0.5, "text_e5": 0.97}, knn_only_min_cosine={"text": 0.40, "text_e5": 0.83}) == {1, 5}
    # no product holds every word: the neighbours are all there is, under the ratio floor alone
    partial = {**SAMSUNG, "bm25": [Hit(1, 25.0, 0.5)]}
    assert matched_ids(partial, ratios=floors, min_coverage=1.0, knn_only_min_cosine={"text": 0.40, "text_e5": 0.83}) == {1, 2, 3, 4}


def test_a_page_of_exact_matches_leaves_knn_only_hits_out_and_a_filter_counts_the_whole_catalog():
    exact = [Hit(i, 10.0 - i / 10, 1.0) for i in range(1, 25)]
    rankings = {"bm25": exact, "text_knn": [Hit(1, 0.9), Hit(99, 0.88)]}
    assert 99 not in matched_ids(rankings, ratios={"text": 0.8}, exact_enough=24, knn_only_min_cosine={})
    assert 99 in matched_ids(rankings, ratios={"text": 0.8}, exact_enough=25, knn_only_min_cosine={})
    assert 99 in matched_ids(rankings, ratios={"text": 0.8}, exact_enough=0, knn_only_min_cosine={})
    # filtered to one exact match: still 24 in the catalog, so the neighbour stays out
    filtered = {"bm25": exact[:1], "text_knn": [Hit(99, 0.88)]}
    assert matched_ids(filtered, ratios={"text": 0.8}, best={"text": 0.9}, exact_enough=24, knn_only_min_cosine={}, exact_count=24) == {1}
    # an engine that reports no term coverage knows no exact match: nothing is dropped on a guess
    unknown = {"bm25": [Hit(i, 10.0 - i / 10) for i in range(1, 25)], "text_knn": [Hit(1, 0.9), Hit(99, 0.35)]}
    assert 99 in matched_ids(unknown, ratios={"text": 0.3}, exact_enough=24, knn_only_min_cosine={"text": 0.4})
    # a photo query is matched by looks: the gates do not apply
    photo = {"bm25": exact, "image_knn": [Hit(98, 0.9)], "text_knn": [Hit(99, 0.88)]}
    assert {98, 99} <= matched_ids(photo, ratios={"text": 0.8, "image": 0.5}, exact_enough=24)


def test_exact_matches_rank_above_products_found_by_meaning_alone():
    rankings = {
        "bm25": [Hit(1, 9.0, 1.0), Hit(2, 8.0, 0.5), Hit(6, 1.0, 0.5)],  # 1 holds every word, 2 and 6 half of them
        "text_knn": [Hit(3, 0.9), Hit(2, 0.85), Hit(1, 0.5)],
    }
    plain = [r.id for r in rankings_blend(rankings, method="linear", weights={"bm25": 1.0, "text_knn": 1.0}, min_coverage=0.0,
                                          exact_boost=0.0, knn_only_min_cosine={})]
    boosted = rankings_blend(rankings, method="linear", weights={"bm25": 1.0, "text_knn": 1.0}, min_coverage=0.0,
                             exact_boost=1.0, knn_only_min_cosine={})
    assert plain[0] != 1 and [r.id for r in boosted][0] == 1
    # the boost is explained, and it is a first place in one more list: 1 in linear fusion, 1 / (k + 1) in RRF
    assert [(p.retriever, p.contribution) for p in boosted[0].parts if p.retriever == "exact"] == [("exact", 1.0)]
    rrf = rankings_blend(rankings, method="rrf", rrf_k=60, weights={"bm25": 1.0, "text_knn": 1.0}, min_coverage=0.0, exact_boost=1.0)
    assert [p.contribution for p in rrf[0].parts if p.retriever == "exact"] == [pytest.approx(1 / 61)]
    with pytest.raises(ValueError, match="0 or more"):
        hybrid_rule(exact_boost=-1.0)


def test_a_cut_off_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        hybrid_rule(min_coverage=1.5)


def test_match_quality_judges_the_whole_result_set():
    qrels = {"q1": {1: 3, 2: 2, 3: 0}, "q2": {9: 1}}
    quality = match_quality(qrels, {"q1": [1, 3, 4, 5], "q2": [9]})
    # q1: 1 of 4 matches relevant, 1 of 2 relevant found; q2 has nothing with gain >= 2
    assert quality == {"match_precision": 0.25, "match_recall": 0.5, "match_f1": pytest.approx(1 / 3),
                       "match_count_median": 2.5, "n_queries": 1}


# -- query-adaptive weights ------------------------------------------------------------------------------
WEIGHTS = {"bm25": 1.33, "text_knn": 1.0, "fused_knn": 1.0, "text_e5_knn": 1.0, "clicks": 1.0}
M = {"covered": 0.5, "partial": 2.0, "identifier": 0.25}


def test_adaptive_weights_lean_on_words_when_bm25s_best_hit_holds_every_term():
    w = adaptive_weights("cotton towel", {"bm25": [Hit(1, 9.0, 1.0)]}, WEIGHTS, multipliers=M)
    assert w == {"bm25": 1.33, "text_knn": 0.5, "fused_knn": 0.5, "text_e5_knn": 0.5, "clicks": 1.0}


def test_adaptive_weights_lean_on_meaning_when_bm25_misses_a_term_or_finds_nothing():
    partial = adaptive_weights("ladies sneakers", {"bm25": [Hit(1, 3.0, 0.5)]}, WEIGHTS, multipliers=M)
    nothing = adaptive_weights("ladies sneakers", {"bm25": []}, WEIGHTS, multipliers=M)
    assert partial["text_knn"] == nothing["text_knn"] == 2.0 and partial["bm25"] == 1.33


def test_adaptive_weights_lean_on_words_for_model_numbers():
    assert has_identifier("Perucci PC-222 watch") and has_identifier("32gb pendrive") and not has_identifier("women watch")
    w = adaptive_weights("PC-222", {"bm25": [Hit(1, 3.0, 0.5)]}, WEIGHTS, multipliers=M)
    assert w["text_knn"] == 0.25 and w["bm25"] == 1.33


# -- the learned re-ranker -------------------------------------------------------------------------------
def fused_list(n: int, coverage_of: dict[int, float]) -> tuple[list[FusedResult], dict[str, list[Hit]]]:
    fused = [FusedResult(i, 1.0 - i / 100, [ScorePart("bm25", 10.0 - i, i + 1, 0.5)]) for i in range(n)]
    return fused, {"bm25": [Hit(i, 10.0 - i, coverage_of.get(i, 0.0)) for i in range(n)]}


def test_reranker_learns_from_grades_saves_loads_and_reorders_the_first_k(tmp_path):
    # given: 40 queries where the products holding every query term (coverage 1) are the clicked ones
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(40):
        good = set(rng.choice(12, size=3, replace=False).tolist())
        fused, rankings = fused_list(12, {i: 1.0 for i in good})
        X = candidate_features("cotton towel", fused, rankings=rankings, k=12)
        groups.append((X, np.array([3 if i in good else 0 for i in range(12)])))
    model = train_reranker(groups, k=8, label_gain=[0, 1, 3, 7], meta={"seed": 0})
    model.save(tmp_path / "ranker")
    loaded = Reranker.load(tmp_path / "ranker")
    # when: a new query whose fully covered products sit at ranks 6 and 7
    fused, rankings = fused_list(10, {5: 1.0, 6: 1.0})
    X = candidate_features("cotton towel", fused, rankings=rankings, k=loaded.k)
    reranked = loaded.rerank(fused, X)
    # then: they lead, the tail beyond k stays where it was, and the saved model scores as the trained one
    assert [r.id for r in reranked[:2]] == [5, 6]
    assert [r.id for r in reranked[8:]] == [8, 9]
    assert np.allclose(loaded.scores(X), model.scores(X))
    assert X.shape == (8, len(FEATURES))


@pytest.mark.django_db
def test_the_rerank_stage_runs_the_model_of_search_reranker_dir_and_nothing_without_one(tmp_path, settings):
    from search.embedding.encoding import QueryVectors
    from search.hybrid.pipeline import HybridQuery, rerank

    # given a model trained to put fully covered products first, in the folder the setting names
    rng = np.random.default_rng(1)
    groups = []
    for _ in range(40):
        good = set(rng.choice(12, size=3, replace=False).tolist())
        fused, rankings = fused_list(12, {i: 1.0 for i in good})
        groups.append((candidate_features("bath towel", fused, rankings=rankings, k=12), np.array([3 if i in good else 0 for i in range(12)])))
    train_reranker(groups, k=12, label_gain=[0, 1, 3, 7]).save(tmp_path / "ranker")
    query = HybridQuery(text="bath towel", vectors=QueryVectors(), weights={}, best=None)
    fused, rankings = fused_list(10, {7: 1.0})
    # when / then: off by default, the fused order stays
    assert settings.SEARCH_RERANKER_DIR == ""
    assert [r.id for r in rerank(fused, query=query, rankings=rankings)] == list(range(10))
    # when / then: on, the covered product leads
    settings.SEARCH_RERANKER_DIR = str(tmp_path / "ranker")
    assert rerank(fused, query=query, rankings=rankings)[0].id == 7


def test_reranker_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(ArtefactError, match="no readable re-ranker"):
        Reranker.load(tmp_path / "missing")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "meta.json").write_text(json.dumps({"k": 24, "features": ["bm25_score"]}))
    (tmp_path / "old" / "model.txt").write_text("tree\n")
    with pytest.raises(ArtefactError, match="other features"):
        Reranker.load(tmp_path / "old")


def test_reranker_refuses_to_train_without_two_different_grades():
    fused, rankings = fused_list(5, {})
    X = candidate_features("towel", fused, rankings=rankings, k=5)
    with pytest.raises(ValueError, match="nothing to learn"):
        train_reranker([(X, np.zeros(5, dtype=int))], k=5, label_gain=[0, 1])


# -- evaluate --clicks on real data ----------------------------------------------------------------------
def test_clicks_need_a_text_data_set_and_a_count_of_zero_or_more():
    with pytest.raises(CommandError, match="needs a text data set"):
        call_command("evaluate", "grocery", "--clicks", "100")
    with pytest.raises(CommandError, match="--clicks must be 0"):
        call_command("evaluate", "crowdflower", "--clicks", "-1")


@pytest.mark.slow
def test_evaluate_crowdflower_with_clicks_scores_every_system_on_the_half_the_clicks_never_saw(tmp_path, settings):
    out = tmp_path / "cf.json"

    call_command("evaluate", "crowdflower", "--limit", "30", "--clicks", "400", "--json", str(out),
                 "--data", str(Path(settings.CATALOG_DIR) / "crowdflower"))

    result = json.loads(out.read_text())
    clicks = result["clicks"]
    assert clicks["sessions"] == 400 and clicks["train_queries"] + clicks["test_queries"] == 30
    assert result["n_queries"] == clicks["test_queries"] == 15
    assert 300 < clicks["counted_clicks"] <= 400  # a cascade shopper clicks at most once
    systems = result["systems"]
    assert {"bm25", "hybrid", "hybrid_no_cutoff", "hybrid_clicks", "ltr", "ltr_clicks", "oracle"} <= set(systems)
    assert all(0.0 <= s["ndcg@10"] <= 1.0 for s in systems.values())
    # the systems without clicks are scored on the same half as those with them
    assert systems["hybrid"]["ndcg@10"] > 0.6 and systems["bm25"]["ndcg@10"] > 0.6
    # shoppers clicked on the other half: on these queries the log holds no per-query evidence
    assert clicks["train_half_ndcg@10"]["hybrid_clicks"] > clicks["train_half_ndcg@10"]["hybrid"] - 0.05
    # the cut-off shrinks the result sets and raises their precision
    cut, uncut = result["membership"]["hybrid"], result["membership"]["hybrid_no_cutoff"]
    assert cut["match_count_median"] < uncut["match_count_median"]
    assert cut["match_precision"] > uncut["match_precision"]
