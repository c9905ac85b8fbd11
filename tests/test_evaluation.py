"""The relevance harness: metric values against hand computation, the data set loaders, errors, a real run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from search.backends.base import Hit
from search.evaluation.datasets import DatasetError, load_crowdflower, load_dataset, load_fashion, load_grocery
from search.evaluation.metrics import evaluate_per_query, evaluate_run, integer_gains
from search.evaluation.sweep import split_queries, sweep_blend


# -- metrics -----------------------------------------------------------------------------------------
def test_metrics_equal_hand_computed_values():
    # given two judged queries and a run ranking some of their products
    qrels = {"q1": {1: 3, 2: 2, 3: 0, 4: 1}, "q2": {5: 1, 6: 1}}
    run = {"q1": [3, 1, 4, 2], "q2": [7, 8, 5]}

    # when scored
    scores = evaluate_run(qrels, run)

    # then nDCG@10 = DCG/IDCG with gain/log2(rank+1), MRR@10 = 1/first relevant rank, recall = found/relevant
    dcg1 = 0 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4) + 2 / math.log2(5)
    idcg1 = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    dcg2 = 1 / math.log2(4)
    idcg2 = 1 / math.log2(2) + 1 / math.log2(3)
    assert scores["ndcg@10"] == pytest.approx((dcg1 / idcg1 + dcg2 / idcg2) / 2, abs=1e-9)
    assert scores["ndcg@10"] == pytest.approx(0.494975, abs=1e-6)
    assert scores["mrr@10"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert scores["recall@100"] == pytest.approx((3 / 3 + 1 / 2) / 2)
    assert scores["n_queries"] == 2


def test_metrics_only_count_the_top_10_for_ndcg_and_mrr():
    qrels = {"q": {99: 1}}
    run = {"q": list(range(1, 11)) + [99]}  # the only relevant product is 11th

    scores = evaluate_run(qrels, run, ["ndcg@10", "mrr@10", "recall@100", "top1", "top5"])

    assert scores == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@100": 1.0, "top1": 0.0, "top5": 0.0, "n_queries": 1}


def test_fractional_gains_keep_their_ratios():
    # the mean of conflicting judgments (0.5) must not be truncated to 0 by ranx's integer gains
    assert integer_gains({"a": 0.5, "b": 1.0, "c": 2.0}) == {"a": 1, "b": 2, "c": 4}

    scores = evaluate_run({"q": {1: 0.5, 2: 1.0}}, {"q": [1, 2]}, ["ndcg@10", "mrr@10"])

    dcg = 0.5 / math.log2(2) + 1.0 / math.log2(3)
    idcg = 1.0 / math.log2(2) + 0.5 / math.log2(3)
    assert scores["ndcg@10"] == pytest.approx(dcg / idcg, abs=1e-9)
    assert scores["mrr@10"] == 1.0


def test_queries_without_relevant_products_are_left_out_and_missing_runs_score_zero():
    qrels = {"judged": {1: 1}, "all_irrelevant": {2: 0}, "not_run": {3: 2}}

    per_query = evaluate_per_query(qrels, {"judged": [1], "all_irrelevant": [2]})

    assert per_query["qids"] == ["judged", "not_run"]
    assert per_query["ndcg@10"] == [1.0, 0.0]


def test_unknown_metric_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="valid: ndcg@10"):
        evaluate_run({"q": {1: 1}}, {"q": [1]}, ["precision@3"])


# -- sweep ---------------------------------------------------------------------------------------------
def test_sweep_splits_queries_in_disjoint_seeded_halves_and_prefers_the_better_retriever():
    qids = [f"q{i}" for i in range(20)]
    dev, test = split_queries(qids)
    assert set(dev).isdisjoint(test) and sorted(dev + test) == sorted(qids) and split_queries(qids) == (dev, test)

    # bm25 puts the relevant product first, text_knn last: the sweep must not weight text_knn up
    qrels = {q: {1: 1} for q in qids}
    rankings = {q: {"bm25": [Hit(1, 9.0), Hit(2, 5.0), Hit(3, 1.0)], "text_knn": [Hit(3, 0.9), Hit(2, 0.8), Hit(1, 0.1)]} for q in qids}

    result = sweep_blend(qrels, rankings, weights=(0.0, 1.0, 2.0), rrf_ks=(10, 60))

    assert result["chosen_test"]["ndcg@10"] == 1.0
    assert result["chosen"]["weights"]["bm25"] > result["chosen"]["weights"]["text_knn"]
    assert result["dev_queries"] == 10 and result["test_queries"] == 10


# -- data set loaders --------------------------------------------------------------------------------
def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _photo(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (60, 80), colour).save(path, "JPEG")
    return path


def test_crowdflower_loader_dedupes_products_and_averages_conflicting_labels(tmp_path):
    # given the same (query, product) judged 2 and 3, and one product judged for two queries
    _write_csv(tmp_path / "train.csv", ["id", "query", "product_title", "product_description", "median_relevance", "relevance_variance"], [
        [1, "red shoes", "Red Running Shoe", "light mesh", 2, 0],
        [2, "red shoes", "Red Running Shoe", "light mesh", 3, 0],
        [3, "red shoes", "Blue Lamp", "", 1, 0],
        [4, "desk lamp", "Blue Lamp", "", 4, 0],
    ])

    ds = load_crowdflower(tmp_path)

    assert [p.title for p in ds.products] == ["Red Running Shoe", "Blue Lamp"]
    assert [q.text for q in ds.queries] == ["red shoes", "desk lamp"]
    shoe, lamp = ds.products
    assert ds.qrels == {"q1": {shoe.id: 1.5, lamp.id: 0.0}, "q2": {lamp.id: 3.0}}
    assert not ds.index_photos


def test_crowdflower_limit_keeps_the_products_judged_for_the_kept_queries(tmp_path):
    _write_csv(tmp_path / "train.csv", ["id", "query", "product_title", "product_description", "median_relevance"],
               [[i, f"query {i}", f"product {i}", "", 4] for i in range(10)])

    small = load_crowdflower(tmp_path).limited(3)

    assert len(small.queries) == 3 and len(small.products) == 3
    assert {pid for gains in small.qrels.values() for pid in gains} == {p.id for p in small.products}


def test_grocery_loader_reads_products_and_labels_query_photos(tmp_path):
    classes = [("Granny-Smith", 0, "Apple", "Fruit"), ("Oatly-Oat-Milk", 1, "Oat-Milk", "Packages")]
    rows = []
    for name, cid, coarse, top in classes:
        folder = f"/iconic-images-and-descriptions/{top}/{coarse}/{name}"
        _photo(tmp_path / folder.lstrip("/") / f"{name}_Iconic.jpg", (0, 200, 0))
        (tmp_path / folder.lstrip("/") / f"{name}_Description.txt").write_text(f"All about {name}.")
        rows.append([name, cid, coarse, cid, f"{folder}/{name}_Iconic.jpg", f"{folder}/{name}_Description.txt"])
    _write_csv(tmp_path / "classes.csv", ["Class Name (str)", "Class ID (int)", "Coarse Class Name (str)", "Coarse Class ID (int)",
                                          "Iconic Image Path (str)", "Product Description Path (str)"], rows)
    _photo(tmp_path / "val/a.jpg", (0, 190, 0))
    _photo(tmp_path / "val/b.jpg", (250, 250, 250))
    _photo(tmp_path / "train/c.jpg", (250, 250, 240))
    (tmp_path / "val.txt").write_text("val/a.jpg, 0, 0\nval/b.jpg, 1, 1\n")
    (tmp_path / "train.txt").write_text("train/c.jpg, 1, 1\n")

    ds = load_grocery(tmp_path, split="val")

    apple, milk = ds.products
    assert apple.title == "Granny Smith Apple" and apple.description == "All about Granny-Smith."
    assert [q.image_path.name for q in ds.queries] == ["a.jpg", "b.jpg"]
    assert ds.qrels == {"val-1": {apple.id: 1.0}, "val-2": {milk.id: 1.0}}
    assert ds.training.image_paths == [tmp_path / "train/c.jpg"] and ds.training.groups == [milk.id]
    with pytest.raises(DatasetError, match="test.txt"):
        load_grocery(tmp_path, split="test")


def test_fashion_loader_holds_out_photo_only_products_and_grades_by_attributes(tmp_path):
    header = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage", "productDisplayName"]
    specs = [("Men", "Tshirts", "Blue"), ("Men", "Tshirts", "Red"), ("Women", "Tshirts", "Blue"), ("Men", "Jeans", "Blue")] * 5
    _write_csv(tmp_path / "styles.csv", header, [
        [1000 + i, g, "Apparel", "Topwear", t, c, "Summer", 2012, "Casual", f"Brand {g} {c} {t} {i}"] for i, (g, t, c) in enumerate(specs)
    ])
    for i in range(len(specs)):
        _photo(tmp_path / "images" / f"{1000 + i}.jpg", (i * 10, 0, 0))

    ds = load_fashion(tmp_path, train_share=0.5)

    # then the evaluated catalog and the training pairs never share a product
    evaluated = {p.external_id for p in ds.products}
    trained = {p.stem for p in ds.training.image_paths}
    assert len(evaluated) == 10 and len(trained) == 10 and evaluated.isdisjoint(trained)
    assert not ds.index_text
    # and a query's gain is 2 for colour + type + gender, 1 for type + gender, absent otherwise
    q = next(q for q in ds.queries if q.text == "blue tshirts for men")
    for p in ds.products:
        a = p.attributes
        expected = 2.0 if (a["type"], a["gender"], a["colour"]) == ("tshirts", "men", "blue") else (
            1.0 if (a["type"], a["gender"]) == ("tshirts", "men") else None)
        assert ds.qrels[q.id].get(p.id) == expected
    assert load_fashion(tmp_path, train_share=0.5).qrels == ds.qrels  # deterministic


@pytest.mark.parametrize("name, expected", [("crowdflower", "train.csv"), ("grocery", "classes.csv"), ("fashion", "styles.csv")])
def test_missing_dataset_file_is_a_command_error_naming_it(tmp_path, name, expected):
    with pytest.raises(CommandError, match=rf"{tmp_path}/{expected}"):
        call_command("evaluate", name, "--data", str(tmp_path))


def test_missing_dataset_folder_is_a_command_error_naming_it(tmp_path):
    with pytest.raises(CommandError, match="nowhere"):
        call_command("evaluate", "crowdflower", "--data", str(tmp_path / "nowhere"))


def test_unknown_dataset_name_is_refused():
    with pytest.raises(DatasetError, match="valid: crowdflower, grocery, fashion"):
        load_dataset("imagenet", Path("."))


# -- end to end on real data -------------------------------------------------------------------------
@pytest.mark.slow
def test_evaluate_crowdflower_sample_writes_valid_json_and_chart(tmp_path, settings):
    out, chart, runs = tmp_path / "cf.json", tmp_path / "cf.png", tmp_path / "runs" / "cf.trec"

    call_command("evaluate", "crowdflower", "--limit", "20", "--json", str(out), "--chart", str(chart), "--run", str(runs),
                 "--data", str(Path(settings.CATALOG_DIR) / "crowdflower"))

    result = json.loads(out.read_text())
    assert result["dataset"] == "crowdflower" and result["n_queries"] == 20 and result["n_products"] > 100
    assert {"bm25", "text_knn", "rrf_bm25_text", "hybrid"} <= set(result["systems"])
    for scores in result["systems"].values():
        assert set(scores) == {"ndcg@10", "mrr@10", "recall@100", "ndcg@10_condensed"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    # real words find real products: BM25 and the hybrid rank judged-relevant products high
    assert result["systems"]["bm25"]["ndcg@10"] > 0.6
    assert result["systems"]["hybrid"]["ndcg@10"] > 0.6
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the TREC files give anyone the table's figures: each system's run scored against the qrels by ranx
    from ranx import Qrels, Run, evaluate

    qrels = Qrels.from_file(str(tmp_path / "runs" / "cf.qrels"), kind="trec")
    for name, scores in result["systems"].items():
        run = Run.from_file(str(tmp_path / "runs" / f"cf.{name}.trec"), kind="trec")
        assert evaluate(qrels, run, "ndcg@10", make_comparable=True) == pytest.approx(scores["ndcg@10"], abs=1e-6), name
        # condensed lists drop unjudged products: never below the standard figure on the same run
        assert scores["ndcg@10_condensed"] >= scores["ndcg@10"] - 1e-9, name


def test_fashion_with_a_trained_head_also_ranks_the_storefront_way_in_the_head_space():
    from search.evaluation.systems import system_specs

    with_head = {s.name: s for s in system_specs("fashion", {"bridge": object(), "fusion": object()}, "bridge")}
    assert with_head["hybrid_fusion"].space == "fusion" and with_head["hybrid_fusion"].blend == {}
    assert with_head["hybrid"].space == "bridge"
    without = {s.name for s in system_specs("fashion", {"bridge": object()}, "bridge")}
    assert without == {"bridge", "hybrid"}


def test_text_sets_report_e5_alone_and_the_blend_without_it_while_e5_is_in_service(settings):
    from types import SimpleNamespace

    from search.evaluation.systems import system_specs

    bridge = {"bridge": SimpleNamespace(name="bridge")}
    settings.ADDITIONAL_TEXT_ENCODERS = ["e5-small"]
    specs = {s.name: s for s in system_specs("crowdflower", bridge, "bridge")}
    assert list(specs) == ["bm25", "text_knn", "fused_knn", "rrf_bm25_text", "e5_knn", "rrf_bm25_e5", "hybrid_without_e5", "hybrid",
                           "hybrid_no_cutoff", "hybrid_no_exact", "hybrid_adaptive"]
    assert specs["e5_knn"].retriever == "text_e5_knn" and specs["hybrid_without_e5"].blend == {"weights": {"text_e5_knn": 0.0}}
    settings.ADDITIONAL_TEXT_ENCODERS = []
    assert [s.name for s in system_specs("fashion_text", bridge, "bridge")] == [
        "bm25", "text_knn", "fused_knn", "rrf_bm25_text", "hybrid", "hybrid_no_cutoff", "hybrid_no_exact", "hybrid_adaptive"]
