"""Pieces of ``manage.py simulate_clicks``: the cascade model's attractiveness, the judged catalog, nDCG@10 via ranx."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from search.clicks.simulation import attractiveness
from search.clicks.simulation_data import ndcg_at_10, read_crowdflower


def test_attractiveness_follows_err_with_a_noise_floor():
    assert [attractiveness(g) for g in range(4)] == [0.02, 0.125, 0.375, 0.875]


def test_crowdflower_judgments_become_gains_over_a_deduplicated_catalog(tmp_path):
    csv_file = tmp_path / "train.csv"
    csv_file.write_text(
        '"id","query","product_title","product_description","median_relevance","relevance_variance"\n'
        '1,"red shoes","Red Shoe","A shoe",4,0\n'
        '2,"red shoes","Red Shoe","A shoe",3,0\n'  # repeated pair with another label: averaged (3.5 -> 4)
        '3,"red shoes","Blue Hat","",1,0\n'
        '4,"hats","Blue Hat","",4,0\n',
        encoding="utf-8",
    )
    catalog = read_crowdflower(csv_file)
    assert catalog.products == [("Red Shoe", "A shoe"), ("Blue Hat", "")]
    assert catalog.gains == {"red shoes": {0: 3, 1: 0}, "hats": {1: 3}}


@pytest.mark.slow  # ranx compiles its metrics with numba on first use (tens of seconds on 2 cores)
def test_ndcg_at_10_rewards_putting_the_relevant_product_first():
    gains = {"q": {1: 3, 2: 0}}
    assert ndcg_at_10(gains, {"q": [1, 2]}) == pytest.approx(1.0)
    assert ndcg_at_10(gains, {"q": [2, 1]}) == pytest.approx(1 / 1.5849625, rel=1e-4)  # linear gain, 1/log2(3)


def test_simulate_clicks_refuses_a_session_count_below_one():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("simulate_clicks", "--sessions", "0")
