"""Index a judged catalog in a throwaway engine and rank its queries the storefront's way.

Every system is a ranking the storefront can produce: one retriever's list
(``search.hybrid.pipeline.search_rankings``) or their fusion (``search.hybrid.pipeline.rankings_blend``,
i.e. ``search.hybrid.fusion.blend`` with ``SEARCH_WEIGHTS`` / ``SEARCH_RRF_K`` / ``SEARCH_FUSION``).
Products are embedded as ``search.services.products_embed`` embeds them (same encoders, same
``encoding.fused_vectors``), but straight from the data set files, with no database rows.

Fusion spaces: ``bridge`` (the zero-shot bridge), ``fusion`` (a head trained here on the data
set's training pairs, when ``mlmodels.head`` is available), and the space the storefront has in
service (``encoding.get_space()``), which ``hybrid`` uses.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from mlmodels.fusion import FusionSpace
from mlmodels.types import EncoderSpec, ImageFeatures
from search.backends.base import Hit, SearchDocument
from search.backends.embedded import EmbeddedSearchBackend
from search.embedding import encoding
from search.embedding.encoders import additional_text_specs, bridge, image_dim, text_dim
from search.evaluation import encoders
from search.evaluation.clicks import ClicksConfig, evaluate_clicks
from search.evaluation.datasets import SEED, TEXT_DATASETS, Dataset
from search.evaluation.membership import match_quality
from search.evaluation.metrics import CONDENSED, METRICS, condensed_run, evaluate_run
from search.evaluation.specs import GROUP_METRIC, SystemSpec, group_scores, system_specs
from search.evaluation.sweep import sweep_blend
from search.hybrid.pipeline import rankings_blend, search_rankings
from search.hybrid.retrievers import TEXT_KNN, blend_weights
from search.identifiers import document_identifiers
from search.lexical import LexicalPlan, lexical_plan, plan_apply

logger = logging.getLogger(__name__)

#: Results scored per query: recall@100 needs the top 100.
RUN_DEPTH = 100
NO_HEAD = "no trained head available"

Progress = Callable[[str], None]


@dataclass
class Encoded:
    """Encoder outputs of a data set's products and queries (rows in data set order)."""

    product_text: np.ndarray | None
    product_image: ImageFeatures | None
    query_text: np.ndarray | None
    query_image: ImageFeatures | None
    rejected_products: dict[int, str] = field(default_factory=dict)
    rejected_queries: dict[int, str] = field(default_factory=dict)
    #: Vector field -> ``(n, dim)`` vectors of each additional text encoder (:func:`additional_specs`).
    product_extra: dict[str, np.ndarray] = field(default_factory=dict)
    query_extra: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Evaluation:
    """Everything ``evaluate`` reports for one data set."""

    dataset: str
    n_queries: int
    n_products: int
    systems: dict[str, dict[str, float]]
    about: dict[str, str]
    notes: list[str]
    settings: dict
    sweep: dict | None = None
    #: The same sweep with the trained head in service (photo data sets, when a head was trained).
    sweep_fusion: dict | None = None
    #: System -> query id -> ranked product ids (the scored runs; ``--run`` writes them as TREC).
    runs: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    #: Query id -> product id -> gain (the judgments the runs were scored against).
    qrels: dict[str, dict] = field(default_factory=dict)
    #: Blend system -> how its result sets cover the relevant products (:func:`match_quality`).
    membership: dict = field(default_factory=dict)
    #: ``--clicks``: the click log and the split (:func:`search.evaluation.clicks.evaluate_clicks`).
    clicks: dict | None = None

    def as_json(self) -> dict:
        out = {"dataset": self.dataset, "n_queries": self.n_queries, "n_products": self.n_products,
               "systems": self.systems, "about": self.about, "notes": self.notes, "settings": self.settings}
        if self.sweep is not None:
            out["sweep"] = self.sweep
        if self.sweep_fusion is not None:
            out["sweep_fusion"] = self.sweep_fusion
        if self.membership:
            out["membership"] = self.membership
        if self.clicks is not None:
            out["clicks"] = self.clicks
        return out


def additional_specs(ds: Dataset) -> tuple[EncoderSpec, ...]:
    """The additional text encoders a text data set is indexed and queried with: ``ADDITIONAL_TEXT_ENCODERS``,
    as in the storefront (photo data sets have no words to give them)."""
    return additional_text_specs() if ds.name in TEXT_DATASETS else ()


def encode_dataset(ds: Dataset, progress: Progress | None = None) -> Encoded:
    """Encode (or read from the cache) every product and query of ``ds``."""
    say = progress or (lambda _msg: None)
    product_text = product_image = query_text = query_image = None
    rejected_products: dict[int, str] = {}
    rejected_queries: dict[int, str] = {}
    if ds.index_text:
        say(f"text of {len(ds.products)} products")
        product_text = encoders.text_vectors([p.encoder_text for p in ds.products], kind="document", tag=f"{ds.name}-products")
    if ds.index_photos:
        with_photo = [i for i, p in enumerate(ds.products) if p.image_path is not None]
        rejected_products = {i: "no photo" for i in range(len(ds.products)) if ds.products[i].image_path is None}
        say(f"photos of {len(with_photo)} products")
        feats, bad = encoders.image_features([ds.products[i].image_path for i in with_photo], tag=f"{ds.name}-products",
                                             views=settings.IMAGE_GALLERY_VIEWS)
        product_image = _scatter(feats, with_photo, len(ds.products))
        rejected_products.update({with_photo[r]: reason for r, reason in bad.items()})
    texts = [q.text for q in ds.queries]
    if any(texts):
        say(f"text of {len(texts)} queries")
        query_text = encoders.text_vectors(texts, kind="query", tag=f"{ds.name}-queries")
    photos = [i for i, q in enumerate(ds.queries) if q.image_path is not None]
    if photos:
        say(f"{len(photos)} query photos")
        feats, bad = encoders.image_features([ds.queries[i].image_path for i in photos], tag=f"{ds.name}-queries",
                                             views=settings.IMAGE_QUERY_VIEWS)
        query_image = _scatter(feats, photos, len(ds.queries))
        rejected_queries = {photos[r]: reason for r, reason in bad.items()}
    enc = Encoded(product_text, product_image, query_text, query_image, rejected_products, rejected_queries)
    for spec in additional_specs(ds):
        say(f"{spec.name} vectors of {len(ds.products)} products and {len(texts)} queries")
        enc.product_extra[spec.vector_field] = encoders.text_vectors(
            [p.encoder_text for p in ds.products], kind="document", tag=f"{ds.name}-products", spec=spec)
        enc.query_extra[spec.vector_field] = encoders.text_vectors(texts, kind="query", tag=f"{ds.name}-queries", spec=spec)
    return enc


def _scatter(feats: ImageFeatures, rows: list[int], n: int) -> ImageFeatures:
    features = np.zeros((n, feats.features.shape[1]), np.float32)
    logits = np.zeros((n, feats.logits.shape[1]), np.float32)
    features[rows], logits[rows] = feats.features, feats.logits
    return ImageFeatures(features, logits)


def build_index(ds: Dataset, enc: Encoded, space: FusionSpace, root: Path, *, field_boosts: dict | None = None) -> EmbeddedSearchBackend:
    """A fresh embedded engine under ``root`` holding ``ds``'s products, with fused vectors in ``space``.

    Products whose photo was rejected (photo-only catalogs) are left out; they are counted in
    the notes by the caller.
    """
    dims = {"text": text_dim(), "image": image_dim(), "fused": space.dim, **{f: v.shape[1] for f, v in enc.product_extra.items()}}
    backend = EmbeddedSearchBackend(
        {"INDEX_DIR": root, "INDEX": "eval", "FIELD_BOOSTS": field_boosts or settings.SEARCH_FIELD_BOOSTS}, dims,
    )
    keep = [i for i in range(len(ds.products)) if ds.index_text or i not in enc.rejected_products]
    has_photo = [i for i in keep if enc.product_image is not None and i not in enc.rejected_products]
    fused = np.zeros((len(ds.products), space.dim), np.float32)
    with_photo = set(has_photo)
    for rows, image in ((has_photo, True), ([i for i in keep if i not in with_photo], False)):
        if not rows:
            continue
        text = enc.product_text[rows] if enc.product_text is not None else None
        feats = ImageFeatures(enc.product_image.features[rows], enc.product_image.logits[rows]) if image else None
        fused[rows] = encoding.fused_vectors(text, feats, space=space)
    docs = []
    for i in keep:
        p = ds.products[i]
        vectors = {"fused": fused[i]}
        if enc.product_text is not None:
            vectors["text"] = enc.product_text[i]
        vectors.update({f: v[i] for f, v in enc.product_extra.items()})
        if i in with_photo:
            vectors["image"] = enc.product_image.features[i]
        if ds.index_text:
            docs.append(SearchDocument(id=p.id, external_id=p.external_id, title=p.title, brand=p.brand,
                                       category_path=p.category_path, description=p.description, vectors=vectors,
                                       identifiers=document_identifiers(external_id=p.external_id, title=p.title)))
        else:
            docs.append(SearchDocument(id=p.id, external_id=p.external_id, vectors=vectors))
    backend.reset_index()
    for start in range(0, len(docs), 5000):
        backend.add_bulk(docs[start:start + 5000])
    backend.refresh()
    return backend


def query_rankings(
    ds: Dataset, enc: Encoded, backend: EmbeddedSearchBackend, space: FusionSpace, plans: dict[str, LexicalPlan] | None = None,
) -> dict[str, dict[str, list[Hit]]]:
    """Query id -> retriever -> hits, from ``search_rankings`` exactly as a storefront query runs.

    The words go through ``search.lexical.lexical_plan`` first, as in the storefront: a corrected
    query is searched (and encoded) with its corrected words. Each query's plan is stored in
    ``plans`` when given (for :func:`ranked_ids`).
    """
    out = {}
    for row, q in enumerate(ds.queries):
        if row in enc.rejected_queries:
            continue
        text_vec = enc.query_text[row] if q.text else None
        text = q.text
        if q.text:
            plan = lexical_plan(backend, q.text)
            if plans is not None:
                plans[q.id] = plan
            if plan.text != q.text:
                text = plan.text
                text_vec = encoders.text_vectors([text], kind="query", tag=f"{ds.name}-corrected")[0]
        image = ImageFeatures(enc.query_image.features[row:row + 1], enc.query_image.logits[row:row + 1]) if q.image_path else None
        extra = {f: v[row] for f, v in enc.query_extra.items()} if q.text else None
        if extra and text != q.text:  # the corrected words, encoded by each additional encoder too
            extra = {spec.vector_field: encoders.text_vectors([text], kind="query", tag=f"{ds.name}-corrected", spec=spec)[0]
                     for spec in additional_text_specs() if spec.vector_field in extra}
        vectors = encoding.query_vectors_from(text_vec, image, space=space, extra=extra)
        out[q.id] = search_rankings(backend=backend, text=text, vectors=vectors)
    return out


def ranked_ids(rankings: dict[str, list[Hit]], spec: SystemSpec, plan: LexicalPlan | None = None, *, photo: bool = False,
               text: str = "") -> list[int]:
    """Every id one query matches under ``spec``, best first (scored on the top :data:`RUN_DEPTH`);
    a blend shows ``plan`` as the storefront does (identifiers first, nothing for words no product
    holds and no close meaning), and gets the query's ``text`` as the storefront's does (weights by
    the words' script, ``search.hybrid.language``; query-adaptive weights) unless its ``blend`` sets
    ``text`` itself ("" turns that off)."""
    if spec.retriever is not None:
        return [h.id for h in rankings.get(spec.retriever, [])]
    fused = rankings_blend(rankings, **{"text": text, **(spec.blend or {})})
    if plan is not None:
        # the query's best MiniLM cosine from its own list, as the storefront reads it, also for a blend that weighs that list 0
        best = rankings[TEXT_KNN][0].score if rankings.get(TEXT_KNN) else None
        fused, _ = plan_apply(fused, plan, photo=photo, min_cosine=settings.SEARCH_SIMILAR_MIN_COSINE, text_knn=TEXT_KNN,
                              best=best, limit=settings.SEARCH_SIMILAR_LIMIT)
    return [r.id for r in fused]


def plan_notes(plans: dict[str, LexicalPlan]) -> list[str]:
    """One line on what the words' plans changed: corrections, identifier matches, empty answers."""
    corrected = sum(1 for p in plans.values() if p.corrected)
    pinned = sum(1 for p in plans.values() if p.identifier_ids)
    no_text = sum(1 for p in plans.values() if not p.text_match)
    examples = "; ".join(f"{p.typed!r} -> {p.corrected!r}" for p in plans.values() if p.corrected)
    return [f"words: {corrected} queries corrected for typos{f' ({examples})' if examples else ''}, {pinned} matched an identifier, "
            f"{no_text} held by no product (of {len(plans)}; search.lexical, as in the storefront)"] if plans else []


def train_head(ds: Dataset, progress: Progress | None = None, **kwargs) -> tuple[FusionSpace | None, str]:
    """Train a fusion head on ``ds.training`` (never on evaluated products); ``(None, reason)`` if none can be."""
    try:
        from mlmodels.head import train_fusion_head  # torch: loaded only when a head is trained
    except ImportError:
        return None, f"{NO_HEAD}: mlmodels.head (train_fusion_head) is not installed; the 'fusion' system is skipped"
    if ds.training is None or not ds.training.texts:
        return None, f"{NO_HEAD}: {ds.name} has no training pairs"
    say = progress or (lambda _msg: None)
    pairs = ds.training
    say(f"photos of {len(pairs.image_paths)} training pairs")
    feats, bad = encoders.image_features(pairs.image_paths, tag=f"{ds.name}-train")
    keep = [i for i in range(len(pairs.texts)) if i not in bad]
    texts = encoders.text_vectors(pairs.texts, kind="document", tag=f"{ds.name}-train")
    say(f"training a fusion head on {len(keep)} pairs")
    started = time.perf_counter()
    head = train_fusion_head(texts[keep], feats.features[keep], group_ids=np.asarray(pairs.groups)[keep], seed=SEED,
                             text_dim=text_dim(), image_dim=image_dim(), **kwargs)
    took = time.perf_counter() - started
    return head, f"fusion head trained on {len(keep)} (photo, text) pairs in {took:.1f} s (seed {SEED}); no evaluated product among them"


def evaluate_dataset(
    ds: Dataset, *, sweep: bool = False, clicks: ClicksConfig | None = None, progress: Progress | None = None,
) -> Evaluation:
    """Index ``ds`` once per fusion space, rank every query with every system, and score the runs.

    Args:
        ds: the data set (possibly ``limited``).
        sweep: also grid-search the blend on a dev half of the queries (see :func:`sweep_blend`).
        clicks: text sets: simulate shoppers on one seeded half, learn from their clicks, and score
            every system on the other half (:func:`search.evaluation.clicks.evaluate_clicks`).
        progress: callable receiving one line per step.
    """
    say = progress or (lambda _msg: None)
    notes = list(ds.notes)
    enc = encode_dataset(ds, say)
    if enc.rejected_queries:
        notes.append(f"{len(enc.rejected_queries)} query photos were rejected by the decoder and left out.")
    if enc.rejected_products:
        notes.append(f"{len(enc.rejected_products)} product photos were rejected; photo-only catalogs leave those products out.")
    spaces: dict[str, FusionSpace] = {"bridge": bridge()}
    service = encoding.get_space()
    service_key = "bridge" if service.version == spaces["bridge"].version else "service"
    if service_key == "service":
        spaces["service"] = service
    if ds.name in ("grocery", "fashion"):
        head, message = train_head(ds, say)
        notes.append(message)
        if head is not None:
            spaces["fusion"] = head
    specs = system_specs(ds.name, spaces, service_key)
    needed = {s.space for s in specs}
    rankings: dict[str, dict[str, dict[str, list[Hit]]]] = {}
    plans: dict[str, dict[str, LexicalPlan]] = {}
    with tempfile.TemporaryDirectory(prefix="eval-index-") as tmp:
        for key in sorted(needed):
            say(f"indexing {len(ds.products)} products ({key} space) and running {len(ds.queries)} queries")
            backend = build_index(ds, enc, spaces[key], Path(tmp) / key)
            plans[key] = {}
            rankings[key] = query_rankings(ds, enc, backend, spaces[key], plans[key])
    notes += plan_notes(plans.get(service_key, {}))
    metrics = [*METRICS, "top1", "top5"] if ds.name == "grocery" else list(METRICS)
    if ds.groups:
        metrics = [GROUP_METRIC, *metrics]
    photos = {q.id for q in ds.queries if q.image_path is not None}
    texts = {q.id: q.text for q in ds.queries}
    results, runs, membership, scored = {}, {}, {}, None
    if clicks and ds.name in TEXT_DATASETS:  # every system on the half the clicks never saw
        say(f"learning from {clicks.sessions} simulated sessions on one half of the queries")
        learned = evaluate_clicks(ds.qrels, texts, rankings[service_key], clicks, metrics=tuple(metrics), progress=say)
        scored = set(learned["test"])
        notes.append(f"--clicks {clicks.sessions}: {learned['clicks']['counted_clicks']} counted clicks on "
                     f"{learned['clicks']['train_queries']} queries (seed {clicks.seed}); every system is scored on the other "
                     f"{learned['clicks']['test_queries']} queries.")
    for spec in specs:
        run = {qid: ranked_ids(r, spec, plans[spec.space].get(qid), photo=qid in photos, text=texts.get(qid, ""))
               for qid, r in rankings[spec.space].items() if scored is None or qid in scored}
        qrels = ds.qrels if scored is None else {q: g for q, g in ds.qrels.items() if q in scored}
        top = {q: ids[:RUN_DEPTH] for q, ids in run.items()}
        runs[spec.name] = top
        results[spec.name] = evaluate_run(qrels, top, metrics)
        results[spec.name][CONDENSED] = evaluate_run(qrels, condensed_run(qrels, top), ["ndcg@10"])["ndcg@10"]
        if ds.groups:
            results[spec.name].update(group_scores(ds, top))
        if spec.blend is not None and ds.name in TEXT_DATASETS:
            membership[spec.name] = match_quality(ds.qrels, run)
    if scored is not None:
        for name, scores in learned["systems"].items():
            results.setdefault(name, {**scores, "n_queries": len(scored)})
    n_queries = max((r["n_queries"] for r in results.values()), default=0)
    for r in results.values():
        r.pop("n_queries", None)
    unjudged = len(ds.queries) - n_queries - len(enc.rejected_queries)
    if unjudged > 0:
        notes.append(f"{unjudged} queries have no relevant product and are left out of the means.")
    out = Evaluation(
        dataset=ds.name, n_queries=n_queries, n_products=len(ds.products) - (0 if ds.index_text else len(enc.rejected_products)),
        systems=results, about={**(learned["about"] if scored is not None else {}), **{s.name: s.about for s in specs}}, notes=notes,
        membership=membership, clicks=learned["clicks"] if scored is not None else None,
        settings={"SEARCH_FUSION": settings.SEARCH_FUSION, "SEARCH_RRF_K": settings.SEARCH_RRF_K,
                  "SEARCH_WEIGHTS": dict(settings.SEARCH_WEIGHTS), "SEARCH_FIELD_BOOSTS": dict(settings.SEARCH_FIELD_BOOSTS),
                  "FUSION_WEIGHTS": dict(settings.FUSION_WEIGHTS), "service_space": spaces[service_key].name,
                  "IMAGE_QUERY_VIEWS": settings.IMAGE_QUERY_VIEWS, "IMAGE_GALLERY_VIEWS": settings.IMAGE_GALLERY_VIEWS},
        runs=runs, qrels=ds.qrels,
    )
    if sweep:
        say("sweeping fusion settings on the dev half")
        out.sweep = sweep_blend(ds.qrels, rankings[service_key], metrics=metrics)
        if "fusion" in rankings:
            say("sweeping fusion settings on the dev half, trained head in service")
            photo = any(q.image_path is not None for q in ds.queries)
            out.sweep_fusion = sweep_blend(ds.qrels, rankings["fusion"], metrics=metrics,
                                           current=blend_weights(space="fusion", photo=photo))
    return out
