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
