"""Image encoder on CPU: torch against ONNX Runtime, per photo, in one process on the same photos.

    python bench/image_encoder.py [--photos 64] [--rounds 3] [--json out.json] [--markdown out.md]

Both encoders are the storefront's own (``mlmodels.image.EfficientNetEncoder``, one CPU thread each as
``ENCODER_CPU_THREADS`` says) and get the same decoded Flipkart photos. Two loads:

* **batch 1**: ``encode([photo])``, a shopper's photo query (preprocessing + network);
* **batch 32**: ``encode(32 photos)``, what ``products_index`` hands the encoder per task
  (``workers.tasks.BATCH_SIZE``); the encoder splits it into forward batches of its own
  ``batch_size`` (``CPU_BATCH_SIZE`` for torch, ``ONNX_CPU_BATCH_SIZE`` for ONNX Runtime),
  timed at 1, the defaults and 8 photos per forward pass.

Runs alternate between the runtimes photo by photo (batch 1) and chunk by chunk (batch 32) so
both see the same machine load (``bench/encoder_timing.py``). Wall and process CPU time are
reported per photo; on a shared machine CPU time is the steadier of the two. Decoding is not
timed. Not part of the test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.encoder_timing import arguments, load_average, load_both, report, run_notes, run_record, summary, time_loads, timed  # noqa: E402


def load_photos(n: int) -> list:
    """The first ``n`` Flipkart photos (sorted by file name), decoded as the storefront decodes uploads."""
    from django.conf import settings

    from mlmodels.images import open_image

    paths = sorted((Path(settings.CATALOG_DIR) / "flipkart" / "images").glob("*.jpg"))[:n]
    return [open_image(p.read_bytes()).image for p in paths]


def run(n_photos: int, rounds: int) -> dict:
    import numpy as np
    from django.conf import settings

    from mlmodels.device import configure_cpu_threads
    from mlmodels.image import EfficientNetEncoder

    threads = configure_cpu_threads()
    load_before = load_average()
    encoders, load_s = load_both(lambda runtime: EfficientNetEncoder(
        "cpu", runtime=runtime, cache_dir=settings.ENCODER_CACHE_DIR, threads=threads))
    photos = load_photos(n_photos)
    for enc in encoders.values():  # warm up, not timed
        enc.encode(photos[:4])
        enc.encode(photos[:1])

    preprocess = encoders["torch"]._preprocess
    pre_ms = [timed(lambda p=p: preprocess(p))[0] for p in photos]

    chunks = [photos[start:start + 32] for start in range(0, len(photos) - 31, 32)]
    forwards = sorted({1, *(e.batch_size for e in encoders.values()), 8})
    loads = {"batch 1": (1, [[p] for p in photos]), **{f"batch 32, forward {fb}": (fb, chunks) for fb in forwards}}
    results = time_loads(encoders, loads, lambda enc, inputs: enc.encode(inputs), rounds)

    a, b = encoders["torch"].encode(photos), encoders["onnx"].encode(photos)
    return {
        **run_record(encoders, load_s, threads, load_before), "photos": len(photos), "rounds": rounds,
        "preprocess_ms": summary(pre_ms),
        "max_abs_diff": {"features": float(np.abs(a.features - b.features).max()), "logits": float(np.abs(a.logits - b.logits).max())},
        "top1_same": float((a.logits.argmax(1) == b.logits.argmax(1)).mean()),
        "results": results,
    }


def notes(r: dict) -> list[str]:
    return [
        *run_notes(r, f"{r['photos']} Flipkart photos"),
        f"preprocessing (same for both, included above): {r['preprocess_ms']['p50']:.1f} ms/photo p50",
        f"onnx vs torch on these photos: max |diff| features {r['max_abs_diff']['features']:.1e}, logits "
        f"{r['max_abs_diff']['logits']:.1e}; same top-1 class for {r['top1_same']:.0%}",
    ]


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.split("\n")[0], "photo", argv)
    result = run(args.photos, args.rounds)
    report(result, "Image encoder per photo on CPU", "photo", notes(result), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
