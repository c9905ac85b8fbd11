"""Timing an encoder on torch against ONNX Runtime in one process: shared by
``bench/image_encoder.py`` and ``bench/text_encoder.py``.

Both runtimes get the same inputs, call by call, alternating which goes first so both see the
same machine load; wall and process CPU time are kept per input (photo or text). On a shared
machine CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

RUNTIMES = ("torch", "onnx")


def load_both(factory: Callable[[str], Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """``factory(runtime)`` for torch and onnx: (encoders, seconds each took to load).

    Raises:
        SystemExit: the ONNX Runtime encoder fell back to torch (its note says why).
    """
    encoders, load_s = {}, {}
    for runtime in RUNTIMES:
        t0 = time.perf_counter()
        encoders[runtime] = factory(runtime)
        load_s[runtime] = time.perf_counter() - t0
    if encoders["onnx"].runtime != "onnx":
        raise SystemExit(f"ONNX Runtime did not load: {encoders['onnx'].runtime_note}")
    return encoders, load_s


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Run ``fn()``; return (wall ms, process CPU ms)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - w0) * 1000, (time.process_time() - c0) * 1000


def summary(samples: Sequence[float]) -> dict:
    """``n``, ``p50``, ``p95`` and ``mean`` of ``samples``."""
    import numpy as np

    a = np.asarray(samples)
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


def time_loads(
    encoders: dict[str, Any], loads: dict[str, tuple[int, list[list]]], encode: Callable[[Any, list], Any], rounds: int,
) -> dict[str, dict[str, dict]]:
    """Time each load on both runtimes, ``rounds`` passes, runtimes alternating call by call.

    Args:
        encoders: ``{"torch": encoder, "onnx": encoder}``, each with a ``batch_size`` attribute.
        loads: label -> (inputs per forward pass, the calls: one list of inputs each).
        encode: ``encode(encoder, inputs)``, the call timed.
        rounds: passes over every load.

    Returns:
        label -> runtime -> ``{"wall": summary, "cpu": summary, "forward_batch": n, "default": bool}``,
        times in ms per input; ``default`` when the forward batch is the runtime's own (or the
        call is smaller than that).
    """
    defaults = {r: encoders[r].batch_size for r in RUNTIMES}
    samples = {label: {r: {"wall": [], "cpu": []} for r in RUNTIMES} for label in loads}
    turn = 0
    for _ in range(rounds):
        for label, (forward, calls) in loads.items():
            for inputs in calls:
                for r in (RUNTIMES if turn % 2 == 0 else RUNTIMES[::-1]):
                    encoders[r].batch_size = forward
                    wall, cpu = timed(lambda r=r, inputs=inputs: encode(encoders[r], inputs))
                    encoders[r].batch_size = defaults[r]
                    samples[label][r]["wall"].append(wall / len(inputs))
                    samples[label][r]["cpu"].append(cpu / len(inputs))
                turn += 1
    return {label: {r: {"wall": summary(samples[label][r]["wall"]), "cpu": summary(samples[label][r]["cpu"]),
                        "forward_batch": forward, "default": min(defaults[r], len(calls[0])) == forward}
                    for r in RUNTIMES}
            for label, (forward, calls) in loads.items()}


def header(unit: str) -> list[str]:
    return ["load", "runtime", "forward batch", f"wall p50 ms/{unit}", "wall p95", f"CPU p50 ms/{unit}", f"{unit}s/s (wall)",
            "torch/this (wall)", "torch/this (CPU)"]


def rows(results: dict[str, dict[str, dict]]) -> list[list[str]]:
    """Table rows: per load, torch then onnx, with torch's time over this row's (same load, same forward batch)."""
    out = []
    for label, per in results.items():
        t = per["torch"]
        for name in RUNTIMES:
            x = per[name]
            forward = f"{x['forward_batch']}" + (" (default)" if x["default"] and not label.endswith("batch 1") else "")
            out.append([label, name, forward, f"{x['wall']['p50']:.1f}", f"{x['wall']['p95']:.1f}",
                        f"{x['cpu']['p50']:.1f}", f"{1000 / x['wall']['mean']:.0f}",
                        f"{t['wall']['p50'] / x['wall']['p50']:.2f}x", f"{t['cpu']['p50'] / x['cpu']['p50']:.2f}x"])
    return out


def markdown(unit: str, results: dict, notes: list[str]) -> str:
    cols = header(unit)
    lines = ["| " + " | ".join(cols) + " |", "|---|---|" + "---:|" * (len(cols) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def print_table(title: str, unit: str, results: dict, notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(header(unit)):
        table.add_column(col, justify="left" if i < 2 else "right")
    for row in rows(results):
        table.add_row(*row)
    console = Console(width=170)
    console.print(table)
    for n in notes:
        console.print(n)


def arguments(description: str, unit: str, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``--<unit>s N`` (Flipkart inputs, at least one batch of 32), ``--queries N`` for
    text, ``--rounds``, ``--json`` and ``--markdown``; then set up Django for bench/."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(f"--{unit}s", type=int, default=64, help=f"Flipkart {unit}s (a multiple of 32; default 64)")
    if unit == "document":
        parser.add_argument("--queries", type=int, default=48, help="CrowdFlower queries (default 48)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the inputs (default 3)")
    parser.add_argument("--json", type=Path, help="save every number as JSON")
    parser.add_argument("--markdown", type=Path, help="save the table as Markdown")
    args = parser.parse_args(argv)
    if getattr(args, f"{unit}s") < 32:
        parser.error(f"--{unit}s must be at least 32 (one batch of 32)")
    from bench.run import setup_django

    setup_django()
    return args


def run_record(encoders: dict[str, Any], load_s: dict[str, float], threads: int, load_before: float) -> dict:
    """What every run records besides its timings: date, machine, load, versions, loading, the export."""
    from datetime import datetime

    import onnxruntime
    import torch

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(), "load_average_before": load_before, "load_average_after": load_average(),
        "threads": threads, "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "load_s": load_s, "onnx_exported": encoders["onnx"].onnx_exported, "onnx_file": str(encoders["onnx"]._onnx.path),
    }


def run_notes(r: dict, inputs: str) -> list[str]:
    """Notes on a :func:`run_record` (``r`` also holds ``rounds``): what ran, the machine's load,
    and how long each runtime took to load. ``inputs`` says what was encoded, e.g. "64 Flipkart photos"."""
    return [
        f"{inputs} x {r['rounds']} rounds, {r['threads']} CPU thread(s) per runtime; "
        f"torch {r['versions']['torch']}, onnxruntime {r['versions']['onnxruntime']}",
        f"load average {r['load_average_before']:.1f} before, {r['load_average_after']:.1f} after; {r['machine']}",
        f"loading: torch {r['load_s']['torch']:.1f} s, onnx {r['load_s']['onnx']:.1f} s "
        f"({'exported now' if r['onnx_exported'] else 'cached export'})",
    ]


def report(result: dict, title: str, unit: str, notes: list[str], json_path: Path | None, markdown_path: Path | None) -> None:
    """Print the table and notes; save every number as JSON and the table as Markdown when asked."""
    import json

    print_table(f"{title}, {result['date']}", unit, result["results"], notes)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
    if markdown_path:
        markdown_path.write_text(markdown(unit, result["results"], notes))


def machine() -> str:
    """Cores, CPU, memory and OS (bench/run.py's description without the load average)."""
    from bench.run import machine as describe

    return describe().rsplit(", load average", 1)[0]


def load_average() -> float:
    return os.getloadavg()[0]
