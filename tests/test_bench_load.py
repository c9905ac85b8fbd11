"""The load and indexing benchmarks (``bench/load.py``, ``bench/index_workers.py``): their options,
and the parts that turn measurements into the table (percentiles, the py-spy summary).

Running them is a benchmark, not a test (minutes of CPU): ``make bench-load``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import index_workers  # noqa: E402
import load  # noqa: E402


def test_load_options_default_to_the_issue_s_scenario():
    args = load.parse_args([])
    assert args.clients == [8, 32]
    assert args.duration == 60.0
    assert args.photo_duration == 10.0
    assert args.configs == ["before", "after", "gthread"]
    assert not args.keep_rate_limits


def test_load_short_run_options():
    args = load.parse_args(["--clients", "2", "--duration", "1.5", "--photo-duration", "0", "--configs", "after"])
    assert (args.clients, args.duration, args.photo_duration, args.configs) == ([2], 1.5, 0.0, ["after"])


@pytest.mark.parametrize("argv", [["--configs", "fastest"], ["--clients", "0"], ["--duration", "0"]])
def test_load_rejects_unusable_options(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        load.parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_rate_limits_are_raised_only_when_asked(tmp_path):
    lifted = load.server_env(tmp_path, state_url="redis://127.0.0.1:1/0", keep_limits=False)
    kept = load.server_env(tmp_path, state_url=None, keep_limits=True)
    assert lifted["API_THROTTLE_PHOTO_ANON"] == lifted["API_THROTTLE_PHOTO_USER"] == lifted["API_THROTTLE_SEARCH_ANON"] == "1000000/second"
    assert lifted["CACHE_URL"] == "redis://127.0.0.1:1/0"
    assert lifted["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert "API_THROTTLE_PHOTO_ANON" not in kept and "CACHE_URL" not in kept


def test_percentiles_of_latencies():
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == pytest.approx(50.5)
    assert load.percentile(values, 99) == pytest.approx(99.01)
    assert load.percentile([], 95) == 0.0


def test_profile_breakdown_and_summary_count_inclusive_and_self_samples(tmp_path):
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "handle (gunicorn/workers/sync.py:1);WSGIHandler.__call__ (django/core/handlers/wsgi.py:124);"
        "encode_text_query (search/embedding/encoding.py:125);run (onnxruntime/session.py:5) 6\n"
        "handle (gunicorn/workers/sync.py:1);WSGIHandler.__call__ (django/core/handlers/wsgi.py:124);"
        "page_response (search/api.py:20) 3\n"
        "handle (gunicorn/workers/sync.py:1);close_graceful (gunicorn/util.py:312) 1\n"
    )
    parts = dict(load.profile_breakdown(raw))
    assert parts == {"whole request (Django)": 90.0, "text encoding (MiniLM, ONNX Runtime)": 60.0,
                     "JSON page (serializers)": 30.0, "gunicorn: closing the client socket": 10.0}
    summary = {frame: (inc, own) for frame, inc, own in load.profile_summary(raw)}
    assert summary["run (onnxruntime/session.py:5)"] == (60.0, 60.0)
    assert summary["page_response (search/api.py:20)"] == (30.0, 30.0)
    assert "handle (gunicorn/workers/sync.py:1)" not in summary  # no samples of its own


def test_index_workers_options():
    assert index_workers.parse_args([]).workers == [1, 2]
    args = index_workers.parse_args(["--products", "12", "--workers", "2"])
    assert (args.products, args.workers) == (12, [2])
    with pytest.raises(SystemExit):
        index_workers.parse_args(["--workers", "0"])
