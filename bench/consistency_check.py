"""Photo-text consistency (search.consistency): how many deliberately swapped photos are caught, at what false alarms.

    python bench/consistency_check.py [--share 0.05] [--seed 0] [--json out.json]

Fashion's training pairs (6,137 (title, photo) pairs; encoder outputs from the evaluation cache):
``--share`` of the products get another product's photo (a random cycle: none keeps its own), a
fusion head is trained on the corrupted catalog as ``train_fusion`` would train on one with wrong
uploads, and every product is scored with ``search.consistency.pair_scores``. A false-alarm rate f
puts the threshold at the f-quantile of the good products' scores; the catch rate is the share of
swapped products below it. The zero-shot bridge is scored the same way (no training). Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()
    import numpy as np
    from django.conf import settings

    from mlmodels import head as fh
    from mlmodels.types import ImageFeatures
    from search.consistency import pair_scores
    from search.embedding.encoders import bridge
    from search.evaluation import encoders
    from search.evaluation.datasets import load_fashion

    pairs = load_fashion(Path(settings.CATALOG_DIR) / "fashion").training
    feats, bad = encoders.image_features(pairs.image_paths, tag="fashion-train")
    text = encoders.text_vectors(pairs.texts, kind="document", tag="fashion-train")
    keep = np.array([i for i in range(len(pairs.texts)) if i not in bad])
    text, photos, logits, groups = text[keep], feats.features[keep], feats.logits[keep], np.asarray(pairs.groups)[keep]
    rng = np.random.default_rng(args.seed)
    n = len(keep)
    swapped = rng.choice(n, int(round(args.share * n)), replace=False)  # random order: the cycle below joins random products
    photo_of = np.arange(n)
    photo_of[swapped] = np.roll(swapped, 1)  # a cycle: each swapped product gets the next one's photo, none its own
    photos, logits = photos[photo_of], logits[photo_of]
    head = fh.train_fusion_head(text, photos, group_ids=groups, seed=args.seed, device="cpu")
    is_bad = np.zeros(n, bool)
    is_bad[swapped] = True
    out = {"n_products": int(n), "n_swapped": int(len(swapped)), "seed": args.seed}
    for name, space in (("trained head (cosine)", head), ("zero-shot bridge (cosine)", bridge())):
        s = pair_scores(text, ImageFeatures(photos, logits), space)
        row = {}
        for f in (0.01, 0.02, 0.05, 0.10):
            t = np.quantile(s[~is_bad], f)
            row[f"catch@{f:.0%}"] = float((s[is_bad] < t).mean())
        ranks = np.argsort(np.argsort(s))
        pos = ranks[is_bad]
        row["roc_auc"] = float(1 - (pos.sum() - len(pos) * (len(pos) - 1) / 2) / (len(pos) * (~is_bad).sum()))
        out[name] = row
    print(f"{n} fashion products, {len(swapped)} with another product's photo (seed {args.seed})")
    print("| score | caught @ 1 % false alarms | @ 2 % | @ 5 % | @ 10 % | ROC AUC |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("trained head (cosine)", "zero-shot bridge (cosine)"):
        r = out[name]
        print(f"| {name} | {r['catch@1%']:.3f} | {r['catch@2%']:.3f} | {r['catch@5%']:.3f} | {r['catch@10%']:.3f} | {r['roc_auc']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
