"""Results of ``evaluate`` as a table (rich), a JSON file and a PNG bar chart (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from search.evaluation.systems import Evaluation


def metric_names(ev: Evaluation) -> list[str]:
    names: list[str] = []
    for scores in ev.systems.values():
        names += [m for m in scores if m not in names]
    return names


def print_table(ev: Evaluation, console: Console) -> None:
    """One row per system, one column per metric, the best value of each column in bold."""
    metrics = metric_names(ev)
    table = Table(title=f"{ev.dataset}: {ev.n_queries} queries, {ev.n_products} products")
    table.add_column("system", style="cyan")
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("what it is")
    best = {m: max((s.get(m, 0.0) for s in ev.systems.values()), default=0.0) for m in metrics}
    for name, scores in ev.systems.items():
        cells = []
        for m in metrics:
            value = scores.get(m)
            text = "-" if value is None else f"{value:.4f}"
            cells.append(f"[bold]{text}[/bold]" if value is not None and value == best[m] else text)
        table.add_row(name, *cells, ev.about.get(name, ""))
    console.print(table)
    for note in ev.notes:
        console.print(f"  - {note}")
    if ev.membership:
        matches = Table(title="Result sets (every match): relevant = gain >= 2")
        for col in ("system", "precision", "recall", "F1", "median results"):
            matches.add_column(col, justify="left" if col == "system" else "right")
        for name, m in ev.membership.items():
            matches.add_row(name, f"{m['match_precision']:.3f}", f"{m['match_recall']:.3f}", f"{m['match_f1']:.3f}", f"{m['match_count_median']:.0f}")
        console.print(matches)
    if ev.sweep:
        print_sweep(ev.sweep, console, space=ev.settings.get("service_space", "service"))
    if ev.sweep_fusion:
        print_sweep(ev.sweep_fusion, console, space="trained head")


def print_sweep(sweep: dict, console: Console, *, space: str) -> None:
    chosen = sweep["chosen"]
    console.print(
        f"\nSweep ({space} space): {sweep['tried']} settings tried on {sweep['dev_queries']} dev queries "
        f"({sweep['objective']}); scored on {sweep['test_queries']} test queries."
    )
    table = Table()
    for col in ("setting", "method", "rrf_k", "weights", "dev ndcg@10", "test ndcg@10", "test mrr@10", "test recall@100"):
        table.add_column(col)
    for label, setting, dev, test in (
        ("current settings", sweep["default"], sweep["default_dev"], sweep["default_test"]),
        ("chosen on dev", chosen, sweep["chosen_dev"], sweep["chosen_test"]),
    ):
        weights = ", ".join(f"{k}={v:g}" for k, v in setting["weights"].items())
        table.add_row(label, setting["method"], "-" if setting["method"] == "linear" else str(setting["rrf_k"]), weights,
                      f"{dev['ndcg@10']:.4f}", f"{test['ndcg@10']:.4f}", f"{test.get('mrr@10', 0):.4f}", f"{test.get('recall@100', 0):.4f}")
    console.print(table)


def write_json(ev: Evaluation, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ev.as_json(), indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_chart(ev: Evaluation, path: Path) -> None:
    """Grouped bars: one group per metric, one bar per system."""
    import matplotlib  # about a second to import: only when a chart is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = metric_names(ev)
    systems = list(ev.systems)
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) + 0.4 * len(systems)), 4.2), dpi=120)
    for i, name in enumerate(systems):
        xs = [m + (i - (len(systems) - 1) / 2) * width for m in range(len(metrics))]
        values = [ev.systems[name].get(m, 0.0) for m in metrics]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"{ev.dataset}: {ev.n_queries} queries, {ev.n_products} products")
    ax.legend(fontsize=8, ncols=min(4, len(systems)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run_paths(ev: Evaluation, path: Path) -> dict[str, Path]:
    """Where :func:`write_runs` puts each system's run: ``runs.trec`` -> ``runs.<system>.trec``."""
    suffix = path.suffix or ".trec"
    return {name: path.with_name(f"{path.stem}.{name}{suffix}") for name in ev.runs}


def write_runs(ev: Evaluation, path: Path) -> list[Path]:
    """Each system's ranking as a TREC run file (``qid Q0 docid rank score tag``, ranx's
    ``Run.save``, the format trec_eval reads), and the judgments as ``<stem>.qrels`` (TREC qrels).

    Scores fall with the rank (``depth - rank + 1``), so any tool reading the files ranks as
    ``evaluate`` did. Queries without a result are left out of a run, as trec_eval expects
    (score them as 0, e.g. ranx's ``make_comparable=True``); the qrels hold the queries
    ``evaluate`` averages over (those with a relevant product).

    Returns:
        The files written: the qrels first, then one run per system.
    """
    from ranx import Qrels, Run  # numba compiles on import: only when runs are written

    from search.evaluation.metrics import integer_gains

    path.parent.mkdir(parents=True, exist_ok=True)
    qrels_path = path.with_name(f"{path.stem}.qrels")
    # as evaluate_run scores: only queries with a relevant product (gains scaled to integers)
    judged = {str(q): integer_gains(g) for q, g in ev.qrels.items() if any(v > 0 for v in g.values())}
    Qrels.from_dict(judged).save(str(qrels_path), kind="trec")
    written = [qrels_path]
    for name, target in run_paths(ev, path).items():
        ranked = {str(q): {str(d): float(len(ids) - i) for i, d in enumerate(ids)} for q, ids in ev.runs[name].items() if ids}
        run = Run.from_dict(ranked, name=name)
        run.save(str(target), kind="trec")
        written.append(target)
    return written
