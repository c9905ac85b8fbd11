"""Fusion head vs zero-shot bridge on the fashion catalog: held-out text -> photo retrieval.

20 % of the products (grouped by identical title) are held out; heads train on the rest with
the encoders frozen (cached features, see ``bench/fashion_features.py``). Two query sets run
against the held-out photos only:

* **paired**: each held-out product's own document text must find its photo
  (recall@1, recall@10, nDCG@10; a product with the identical title counts as found);
* **attributes**: one query per held-out "<colour> <article type> for <gender>" combination,
  graded gain 2 for a photo whose three attributes match, 1 for type + gender (nDCG@10).

Usage::

    python bench/fusion_head.py                       # bridge, linear and MLP heads
    python bench/fusion_head.py --kinds linear --epochs 20 40 80 --json var/fusion-bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fashion_features import FashionFeatures, encode_fashion, setup_django  # noqa: E402


def attribute_queries(data: FashionFeatures, rows: np.ndarray) -> tuple[list[str], list[dict[int, int]]]:
    """Queries "<colour> <type> for <gender>" over the gallery ``rows`` with graded judgments."""
    colour, kind, gender = data.colour[rows], data.article_type[rows], data.gender[rows]
    combos = sorted({(c, t, g) for c, t, g in zip(colour, kind, gender, strict=True) if c and t and g})
    queries, judgments = [], []
    for c, t, g in combos:
        same_type = (kind == t) & (gender == g)
        gains = np.where(same_type & (colour == c), 2, np.where(same_type, 1, 0))
        queries.append(f"{c} {t} for {g}".lower())
        judgments.append({int(i): int(gains[i]) for i in np.flatnonzero(gains)})
    return queries, judgments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=["linear", "mlp"])
    parser.add_argument("--epochs", nargs="+", type=int, default=[None])
    parser.add_argument("--dims", nargs="+", type=int, default=[256])
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--soft-weight", type=float, default=None)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--soft-temperature", type=float, default=None)
    parser.add_argument("--no-groups", action="store_true", help="Train without masking identical titles")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--dev", action="store_true",
                        help="Tune: evaluate on a dev split carved from the training products; the held-out products stay unseen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="Write the table as JSON here")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings

    from mlmodels import head as fh
    from mlmodels.crossmodal import holdout_split, paired_judgments, retrieval_metrics
    from mlmodels.types import ImageFeatures
    from search.embedding.encoders import bridge, text_encoder

    data = encode_fashion(Path(settings.CATALOG_DIR) / "fashion")
    groups = np.array([t.strip().lower() for t in data.titles])
    train, held = holdout_split(groups, args.holdout, seed=args.seed)
    if args.dev:
        sub_train, sub_dev = holdout_split(groups[train], args.holdout, seed=args.seed + 1)
        train, held = train[sub_train], train[sub_dev]
    queries, attr_judgments = attribute_queries(data, held)
    attr_text = text_encoder().encode_query(queries)
    pair_judgments = paired_judgments(groups[held])
    print(f"{len(data.ids)} products: {len(train)} train, {len(held)} {'dev' if args.dev else 'held out'}; "
          f"{len(held)} paired queries, {len(queries)} attribute queries", file=sys.stderr)

    def score(space) -> dict:
        gallery = space.image(ImageFeatures(data.image_features[held], data.image_logits[held]))
        paired = retrieval_metrics(space.text(data.text_vectors[held]), gallery, pair_judgments)
        attrs = retrieval_metrics(space.text(attr_text), gallery, attr_judgments)
        return {**{f"paired {k}": v for k, v in paired.items()}, "attributes ndcg@10": attrs["ndcg@10"]}

    rows = {"bridge": {**score(bridge()), "train_s": 0.0, "train_cpu_s": 0.0}}
    overrides = {k: v for k, v in (("lr", args.lr), ("weight_decay", args.weight_decay), ("batch_size", args.batch_size),
                                         ("soft_weight", args.soft_weight), ("soft_temperature", args.soft_temperature),
                                         ("dropout", args.dropout)) if v is not None}
    for kind in args.kinds:
        for dim in args.dims:
            for epochs in args.epochs:
                t0, c0 = time.perf_counter(), time.process_time()
                space = fh.train_fusion_head(
                    data.text_vectors[train], data.image_features[train], group_ids=None if args.no_groups else groups[train],
                    dim=dim, kind=kind, seed=args.seed, device="cpu",
                    **({"epochs": epochs} if epochs else {}), **overrides,
                )
                took, cpu = time.perf_counter() - t0, time.process_time() - c0
                name = f"{kind} d={dim} e={space.params['epochs']}"
                rows[name] = {**score(space), "train_s": round(took, 1), "train_cpu_s": round(cpu, 1), "temperature": round(space.temperature, 4)}
                print(name, rows[name], file=sys.stderr)

    cols = ["paired recall@1", "paired recall@10", "paired ndcg@10", "attributes ndcg@10", "train_s", "train_cpu_s"]
    print(f"{'system':<24}" + "".join(f"{c:>20}" for c in cols))
    for name, r in rows.items():
        print(f"{name:<24}" + "".join(f"{r[c]:>20.3f}" for c in cols))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n_train": int(len(train)), "n_held_out": int(len(held)), "systems": rows}, indent=2))


if __name__ == "__main__":
    main()
