"""``evaluate fashion_compose``: photo + one attribute word on the fashion catalog.

Check set: each query is the photo of a fashion product A from the fashion set's training split
(so A is never in the catalog) plus one attribute word: a colour (``"navy blue"``), a gender
(``"for women"``), a usage (``"casual"``, ``"formal"``, ``"sports"``, ``"ethnic"``) or a material
(a title word: leather, cotton, ...; no specification holds it, so composition leaves it to the
photo). A product is relevant when it has A's article type and gender (a gender word: A's type and
that gender) and the attribute the word names. Only values with at least 3 relevant products are
drawn (seed 0, 600 draws -> 391 distinct queries).

Catalog: the fashion set's 1,535 held-out products indexed as the storefront imports them
(title, description ``"<gender> <colour> <type> <usage>"``, category path, photo), with fused
vectors from a head trained on the training split. Best possible precision@10 = min(10, number
relevant) / 10 per query.

Systems: ``composed`` (``SEARCH_COMPOSE="facets"``, :mod:`search.hybrid.compose`), ``fused``
(``SEARCH_COMPOSE="fused"``: all retrievers on the fused photo+words vector, the storefront blend),
``photo`` (the storefront's photo ranking), ``photo_fused_knn`` (the photo alone in the head
space: the candidates composition starts from), ``words`` (the storefront's text ranking).
"""

from __future__ import annotations

import random
import re
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from django.conf import settings

from mlmodels.types import ImageFeatures
from search.embedding import encoding
from search.evaluation import encoders
from search.evaluation.datasets import load_fashion
from search.evaluation.judged import Dataset, EvalQuery
from search.evaluation.systems import Encoded, Evaluation, Progress, build_index, train_head
from search.hybrid import compose
from search.hybrid.pipeline import rankings_blend, search_rankings
from search.hybrid.retrievers import FUSED_KNN, blend_weights
from shop.importers import read_catalog

GENDER_WORDS = {"men": "for men", "women": "for women", "boys": "for boys", "girls": "for girls", "unisex": "unisex"}
USAGE_WORDS = ("casual", "formal", "sports", "ethnic")
MATERIAL_WORDS = ("leather", "silk", "cotton", "denim", "canvas", "velvet", "lace", "fleece", "knit", "wool")
KINDS = ["colour"] * 4 + ["gender"] * 2 + ["usage"] * 2 + ["material"] * 2
DRAWS = 600
SYSTEMS = {
    "composed": "photo ranks, words -> facets narrow, photo's 5-NN category vote (SEARCH_COMPOSE=facets)",
    "fused": "one fused photo+words vector among all retrievers, storefront blend (SEARCH_COMPOSE=fused)",
    "photo": "the photo alone, storefront photo ranking (image kNN + fused kNN, trained head)",
    "photo_fused_knn": "the photo alone in the head space (kNN on fused vectors)",
    "words": "the words alone, storefront text ranking (BM25 + text kNN + fused kNN)",
}


def _materials(title: str) -> set[str]:
    return set(re.findall(r"[a-z]+", title.lower())) & set(MATERIAL_WORDS)


def load_fashion_compose(folder: Path, *, draws: int = DRAWS) -> tuple[Dataset, dict[str, np.ndarray], np.ndarray]:
    """The composed check set.

    Returns:
        ``(dataset, query photo rows in the training pairs, relevant mask (n_queries, n_products))``;
        the data set's queries carry A's photo and the word, its training pairs are fashion's.
    """
    base = load_fashion(folder)
    specs = {r.external_id: r for r in read_catalog("fashion", folder)}
    products = [replace(p, title=specs[p.external_id].title, description=specs[p.external_id].description,
                        category_path=list(specs[p.external_id].category_path), attributes=dict(specs[p.external_id].specifications))
                for p in base.products]
    _, bad_products = encoders.image_features([p.image_path for p in products], tag="fashion-products")
    train = base.training
    _, bad_train = encoders.image_features(train.image_paths, tag="fashion-train")
    lower = lambda row, key: (row.specifications.get(key) or "").strip().lower()  # noqa: E731
    cat = {key: np.array([lower(specs[p.external_id], name) for p in products])
           for key, name in (("type", "articleType"), ("gender", "gender"), ("colour", "baseColour"), ("usage", "usage"))}
    mats = [_materials(p.title) for p in products]
    keep_cat = np.array([i not in bad_products for i in range(len(products))])
    train_rows = [specs[p.stem] for p in train.image_paths]
    cands = [i for i in range(len(train_rows)) if i not in bad_train and lower(train_rows[i], "articleType") and lower(train_rows[i], "gender")]
    rng = random.Random(0)
    queries, qrels, rows, rel_rows, seen = [], {}, [], [], set()
    for _ in range(draws):
        a = rng.choice(cands)
        ra = {k: lower(train_rows[a], n) for k, n in (("type", "articleType"), ("gender", "gender"), ("colour", "baseColour"), ("usage", "usage"))}
        kind = rng.choice(KINDS)
        same_type = keep_cat & (cat["type"] == ra["type"])
        same_tg = same_type & (cat["gender"] == ra["gender"])
        if kind == "material":
            values = Counter(m for i in np.flatnonzero(same_tg) for m in mats[i])
        else:
            values = Counter(cat[kind][same_type if kind == "gender" else same_tg])
        values = sorted(v for v, c in values.items() if v and c >= 3 and (kind != "usage" or v in USAGE_WORDS))
        if not values:
            continue
        v = rng.choice(values)
        if (a, kind, v) in seen:
            continue
        seen.add((a, kind, v))
        if kind == "material":
            rel, words = same_tg & np.array([v in m for m in mats]), v
        else:
            rel = (same_type if kind == "gender" else same_tg) & (cat[kind] == v)
            words = GENDER_WORDS.get(v, v) if kind == "gender" else v
        qid = f"c{len(queries) + 1}"
        queries.append(EvalQuery(id=qid, text=words, image_path=train.image_paths[a]))
        qrels[qid] = {products[j].id: 1.0 for j in np.flatnonzero(rel)}
        rows.append(a)
        rel_rows.append(rel)
    ds = Dataset(
        name="fashion_compose", source=folder, products=products, queries=queries, qrels=qrels, training=train,
        notes=[f"{len(queries)} composed queries (photo of a training product + one attribute word), seed 0; "
               f"catalog: the {len(products)} held-out fashion products with words and photo."],
    )
    return ds, {"rows": np.array(rows)}, np.stack(rel_rows)


def _facet_lookup(ds: Dataset):
    table = {p.id: compose.ProductFacets((p.category_path[-1] if p.category_path else "").lower(), compose.facet_values(p.attributes))
             for p in ds.products}
    return lambda ids: {i: table[i] for i in ids if i in table}


def evaluate_compose(folder: Path, progress: Progress | None = None) -> Evaluation:
    """p@10, share of the best possible and ratio to the better single signal for every system in :data:`SYSTEMS`."""
    say = progress or (lambda _msg: None)
    ds, extra, rel = load_fashion_compose(folder)
    say(f"{len(ds.queries)} composed queries")
    prod_text = encoders.text_vectors([p.encoder_text for p in ds.products], kind="document", tag="fashion-compose-products-full")
    prod_img, bad = encoders.image_features([p.image_path for p in ds.products], tag="fashion-products")
    words = encoders.text_vectors([q.text for q in ds.queries], kind="query", tag="fashion-compose-words")
    train_img, _ = encoders.image_features(ds.training.image_paths, tag="fashion-train")
    q_img = ImageFeatures(train_img.features[extra["rows"]], train_img.logits[extra["rows"]])
    head, message = train_head(replace(ds, name="fashion"), say)  # fashion's training pairs and their cached features
    if head is None:
        raise RuntimeError(message)
    enc = Encoded(prod_text, prod_img, words, q_img, rejected_products=dict(bad))
    lookup = _facet_lookup(ds)
    runs: dict[str, dict[str, list[int]]] = {name: {} for name in SYSTEMS}
    photo_w, text_w = blend_weights(space="fusion", photo=True), blend_weights(space="fusion", photo=False)
    with tempfile.TemporaryDirectory(prefix="eval-compose-") as tmp:
        say("indexing the catalog")
        backend = build_index(ds, enc, head, Path(tmp) / "idx")
        for row, q in enumerate(ds.queries):
            image = ImageFeatures(q_img.features[row:row + 1], q_img.logits[row:row + 1])
            photo = encoding.query_vectors_from(None, image, space=head)
            both = encoding.query_vectors_from(words[row], image, space=head)
            text = encoding.query_vectors_from(words[row], None, space=head)
            r_photo = search_rankings(backend=backend, text="", vectors=photo)
            runs["photo"][q.id] = [r.id for r in rankings_blend(r_photo, weights=photo_w)]
            runs["photo_fused_knn"][q.id] = [h.id for h in r_photo[FUSED_KNN]]
            runs["words"][q.id] = [r.id for r in rankings_blend(search_rankings(backend=backend, text=q.text, vectors=text), weights=text_w)]
            runs["fused"][q.id] = [r.id for r in rankings_blend(search_rankings(backend=backend, text=q.text, vectors=both), weights=photo_w)]
            composed = compose.composed_ranking(backend=backend, words=q.text, photo_vector=photo.fused, lookup=lookup)
            runs["composed"][q.id] = [r.id for r in composed.results]
    best = np.minimum(rel.sum(axis=1), 10) / 10
    index = {p.id: i for i, p in enumerate(ds.products)}
    p10 = {name: np.array([rel[qi][[index[i] for i in run[q.id][:10]]].sum() / 10 for qi, q in enumerate(ds.queries)])
           for name, run in runs.items()}
    single = max(p10["photo"].mean(), p10["photo_fused_knn"].mean(), p10["words"].mean())
    results = {name: {"p@10": float(v.mean()), "share_of_best": float(v.mean() / best.mean()), "x_better_single": float(v.mean() / single)}
               for name, v in p10.items()}
    return Evaluation(
        dataset=ds.name, n_queries=len(ds.queries), n_products=len(ds.products) - len(bad), systems=results, about=dict(SYSTEMS),
        notes=[*ds.notes, message, f"best possible p@10: {best.mean():.4f}; better single signal: {single:.4f}"],
        settings={"SEARCH_COMPOSE_FACETS": {k: list(v) for k, v in settings.SEARCH_COMPOSE_FACETS.items()},
                  "FUSION_WEIGHTS": dict(settings.FUSION_WEIGHTS)},
    )
