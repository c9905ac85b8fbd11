"""Image encoder on CPU: torch against ONNX Runtime, per photo, in one process on the same photos.

    python bench/image_encoder.py [--photos 64] [--rounds 3] [--json out.json] [--markdown out.md]

Both encoders are the storefront's own (``mlmodels.image.ImageEncoder``, one CPU thread each as
``ENCODER_CPU_THREADS`` says) and get the same decoded Flipkart photos. Two loads:

* **batch 1**: ``encode([photo])``, a shopper's photo query (preprocessing + network);
* **batch 32**: ``encode(32 photos)``, what ``products_index`` hands the encoder per task
  (``workers.tasks.BATCH_SIZE``); the encoder splits it into forward batches of its own
  ``batch_size`` (``CPU_BATCH_SIZE`` for torch, ``ONNX_CPU_BATCH_SIZE`` for ONNX Runtime),
  timed at 1, the defaults and 8 photos per forward pass.

Runs alternate between the runtimes photo by photo (batch 1) and chunk by chunk (batch 32) so
both see the same machine load. Wall and process CPU time are reported per photo; on a shared
machine CPU time is the steadier of the two. Decoding is not timed. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNTIMES = ("torch", "onnx")


def load_photos(n: int) -> list:
    """The first ``n`` Flipkart photos (sorted by file name), decoded as the storefront decodes uploads."""
    from django.conf import settings

    from mlmodels.images import open_image

    paths = sorted((Path(settings.CATALOG_DIR) / "flipkart" / "images").glob("*.jpg"))[:n]
    return [open_image(p.read_bytes()).image for p in paths]


def timed(fn) -> tuple[float, float]:
    """Run ``fn()``; return (wall ms, process CPU ms)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - w0) * 1000, (time.process_time() - c0) * 1000


def summary(samples: list[float]) -> dict:
    import numpy as np

    a = np.asarray(samples)
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


def run(n_photos: int, rounds: int) -> dict:
    import numpy as np
    from django.conf import settings

    from mlmodels.device import configure_cpu_threads
    from mlmodels.image import ImageEncoder

    threads = configure_cpu_threads()
    load_before = os.getloadavg()
    encoders, load_s = {}, {}
    for runtime in RUNTIMES:
        t0 = time.perf_counter()
        encoders[runtime] = ImageEncoder("cpu", runtime=runtime, cache_dir=settings.ENCODER_CACHE_DIR, threads=threads)
        load_s[runtime] = time.perf_counter() - t0
    if encoders["onnx"].runtime != "onnx":
        raise SystemExit(f"ONNX Runtime did not load: {encoders['onnx'].runtime_note}")
    photos = load_photos(n_photos)
    for enc in encoders.values():  # warm up, not timed
        enc.encode(photos[:4])
        enc.encode(photos[:1])

    preprocess = encoders["torch"]._preprocess
    pre_ms = [timed(lambda p=p: preprocess(p))[0] for p in photos]

    defaults = {r: encoders[r].batch_size for r in RUNTIMES}
    loads = {"batch 1": 1, **{f"batch 32, forward {fb}": fb for fb in sorted({1, *defaults.values(), 8})}}
    samples = {label: {r: {"wall": [], "cpu": []} for r in RUNTIMES} for label in loads}
    turn = 0
    for _ in range(rounds):
        for photo in photos:
            for r in (RUNTIMES if turn % 2 == 0 else RUNTIMES[::-1]):
                wall, cpu = timed(lambda r=r, photo=photo: encoders[r].encode([photo]))
                samples["batch 1"][r]["wall"].append(wall)
                samples["batch 1"][r]["cpu"].append(cpu)
            turn += 1
        for label, forward in loads.items():
            if label == "batch 1":
                continue
            for start in range(0, len(photos) - 31, 32):
                chunk = photos[start:start + 32]
                for r in (RUNTIMES if turn % 2 == 0 else RUNTIMES[::-1]):
                    encoders[r].batch_size = forward
                    wall, cpu = timed(lambda r=r, chunk=chunk: encoders[r].encode(chunk))
                    encoders[r].batch_size = defaults[r]
                    samples[label][r]["wall"].append(wall / len(chunk))
                    samples[label][r]["cpu"].append(cpu / len(chunk))
                turn += 1

    a, b = encoders["torch"].encode(photos), encoders["onnx"].encode(photos)
    top1_same = float((a.logits.argmax(1) == b.logits.argmax(1)).mean())
    results = {label: {r: {"wall": summary(samples[label][r]["wall"]), "cpu": summary(samples[label][r]["cpu"]),
                           "forward_batch": forward, "default": forward == defaults[r]}
                       for r in RUNTIMES}
               for label, forward in loads.items()}
    import onnxruntime
    import torch

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "load_average_before": load_before[0], "load_average_after": os.getloadavg()[0],
        "threads": threads, "photos": len(photos), "rounds": rounds,
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "load_s": load_s, "onnx_exported": encoders["onnx"].onnx_exported, "onnx_file": str(encoders["onnx"]._onnx.path),
        "preprocess_ms": summary(pre_ms),
        "max_abs_diff": {"features": float(np.abs(a.features - b.features).max()), "logits": float(np.abs(a.logits - b.logits).max())},
        "top1_same": top1_same,
        "results": results,
    }


def rows(r: dict) -> list[list[str]]:
    out = []
    for label, per in r["results"].items():
        t, o = per["torch"], per["onnx"]
        for name, x in (("torch", t), ("onnx", o)):
            forward = f"{x['forward_batch']}" + (" (default)" if x["default"] and label != "batch 1" else "")
            out.append([label, name, forward, f"{x['wall']['p50']:.1f}", f"{x['wall']['p95']:.1f}",
                        f"{x['cpu']['p50']:.1f}", f"{1000 / x['wall']['mean']:.0f}",
                        f"{t['wall']['p50'] / x['wall']['p50']:.2f}x", f"{t['cpu']['p50'] / x['cpu']['p50']:.2f}x"])
    return out


HEADER = ["load", "runtime", "forward batch", "wall p50 ms/photo", "wall p95", "CPU p50 ms/photo", "photos/s (wall)",
          "torch/this (wall)", "torch/this (CPU)"]


def notes(r: dict) -> list[str]:
    return [
        f"{r['photos']} Flipkart photos x {r['rounds']} rounds, {r['threads']} CPU thread(s) per runtime; "
        f"torch {r['versions']['torch']}, onnxruntime {r['versions']['onnxruntime']}",
        f"load average {r['load_average_before']:.1f} before, {r['load_average_after']:.1f} after; {r['machine']}",
        f"preprocessing (same for both, included above): {r['preprocess_ms']['p50']:.1f} ms/photo p50",
        f"loading: torch {r['load_s']['torch']:.1f} s, onnx {r['load_s']['onnx']:.1f} s "
        f"({'exported now' if r['onnx_exported'] else 'cached export'})",
        f"onnx vs torch on these photos: max |diff| features {r['max_abs_diff']['features']:.1e}, logits "
        f"{r['max_abs_diff']['logits']:.1e}; same top-1 class for {r['top1_same']:.0%}",
    ]


def markdown(r: dict) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---|" + "---:|" * (len(HEADER) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(r)]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes(r)) + "\n"


def print_table(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Image encoder per photo on CPU, {r['date']}")
    for i, col in enumerate(HEADER):
        table.add_column(col, justify="left" if i < 2 else "right")
    for row in rows(r):
        table.add_row(*row)
    console = Console(width=170)
    console.print(table)
    for n in notes(r):
        console.print(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=64, help="Flipkart photos (a multiple of 32; default 64)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the photos (default 3)")
    parser.add_argument("--json", type=Path, help="save every number as JSON")
    parser.add_argument("--markdown", type=Path, help="save the table as Markdown")
    args = parser.parse_args(argv)
    if args.photos < 32:
        parser.error("--photos must be at least 32 (one batch of 32)")
    from bench.run import setup_django

    setup_django()
    result = run(args.photos, args.rounds)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(result))
    return 0


def machine() -> str:
    from bench.run import machine as describe

    return describe().rsplit(", load average", 1)[0]


if __name__ == "__main__":
    raise SystemExit(main())
