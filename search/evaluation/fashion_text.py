"""``fashion_text``: the Myntra fashion catalog as a text-search shop, judged from its attributes.

A second judged text set beside CrowdFlower, so that a ranking choice made on one can be checked
on the other. The rules below were fixed before any system was run on the set; they favour no
retriever and are not to be tuned against results.

Catalog
    Every product of ``styles.csv`` with a title (7,580 of 7,672), indexed the way a shop
    without structured attributes would be: its title (``productDisplayName``, which usually
    names the brand, gender, colour and type) and its photo. The attributes that grade relevance
    (article type, gender, base colour) are *not* indexed, so the judgments are not a copy of
    the indexed text. Products of the article type "Free Gifts" (items of any kind given away)
    are left out: they have no type to judge against.

Queries (:func:`plan_queries`)
    Intents are distinct attribute combinations that at least :data:`MIN_MATCHES` products
    satisfy, over the article types with at least :data:`MIN_TYPE_PRODUCTS` products; a seeded
    sample of each kind (:data:`QUERY_MIX`): type + gender + colour, type + gender,
    type + colour, type alone. Each intent is phrased by a random generator seeded by the intent
    itself: every phrase (type, colour, gender) is a shopper phrase with probability
    :data:`SHOPPER_SHARE` when the vocabulary has one (``fashion_vocab``: "tee", "sneakers",
    "navy", "ladies"), else the catalog's own word; then one of the word orders of
    :data:`TEMPLATES`. A text that repeats an earlier query is dropped.

Grades (:func:`grade`), for a query asking type T, gender G (optional) and colour C (optional)
    3: the product's type is T and its gender and colour are the ones asked (a unisex product
       suits "men" and "women"; colour means the exact base colour);
    2: type T and the gender asked, another colour;
    1: type T for another gender, or a related type (``fashion_vocab.RELATED_TYPES``: "Tops"
       for a tee, "Heels" for flats) for the gender asked;
    0: anything else (not listed in the qrels).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from search.evaluation.fashion_vocab import COLOUR_PHRASES, GENDER_ACCEPTS, GENDER_PHRASES, RELATED_TYPES, TYPE_PHRASES
from search.evaluation.judged import SEED, Dataset, DatasetError, EvalProduct, EvalQuery
from search.query import normalise_query
from shop.importers import CatalogFormatError, read_catalog

NAME = "fashion_text"
#: The catalog folder it reads (``CATALOG_DIR/fashion``).
DATA_FOLDER = "fashion"
#: Article types that are not a kind of product.
EXCLUDED_TYPES = frozenset({"Free Gifts"})
#: Article types with fewer products do not become queries (their products stay in the catalog).
MIN_TYPE_PRODUCTS = 10
#: An intent needs at least this many products with every attribute it asks (grade 3).
MIN_MATCHES = 2
#: Queries sampled per intent kind (500 in all; the mean nDCG@10's standard error is near 0.01).
QUERY_MIX = {"type_gender_colour": 225, "type_gender": 150, "type_colour": 75, "type": 50}
#: Chance that a phrase is a shopper phrase when the vocabulary has one.
SHOPPER_SHARE = 0.5
#: Word orders per intent kind: {t} type, {c} colour, {gb} gender before the type, {ga} after it.
TEMPLATES = {
    "type_gender_colour": ("{gb} {c} {t}", "{c} {t} {ga}", "{c} {gb} {t}", "{t} {c} {ga}"),
    "type_gender": ("{gb} {t}", "{t} {ga}"),
    "type_colour": ("{c} {t}", "{t} {c}"),
    "type": ("{t}",),
}


@dataclass(frozen=True)
class Intent:
    """What a query asks for: an article type, and optionally a gender and a base colour (catalog spelling)."""

    type: str
    gender: str | None = None
    colour: str | None = None

    @property
    def kind(self) -> str:
        """``type_gender_colour``, ``type_gender``, ``type_colour`` or ``type``."""
        return "_".join(["type", *(["gender"] if self.gender else []), *(["colour"] if self.colour else [])])


@dataclass(frozen=True)
class PlannedQuery:
    """One query of the set: ``id``, the ``intent`` it phrases, its ``text``, and whether any phrase is a shopper phrase."""

    id: str
    intent: Intent
    text: str
    shopper_words: bool


def _related() -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for group in RELATED_TYPES:
        for t in group:
            out.setdefault(t, set()).update(group - {t})
    return {t: frozenset(r) for t, r in out.items()}


RELATED = _related()


def grade(intent: Intent, attributes: dict[str, str]) -> int:
    """The gain (0-3) of a product with ``attributes`` (``type``, ``gender``, ``colour``, catalog spelling) for ``intent``."""
    gender_ok = intent.gender is None or attributes.get("gender") in GENDER_ACCEPTS[intent.gender]
    colour_ok = intent.colour is None or attributes.get("colour") == intent.colour
    if attributes.get("type") == intent.type:
        if gender_ok:
            return 3 if colour_ok else 2
        return 1
    return 1 if gender_ok and attributes.get("type") in RELATED.get(intent.type, ()) else 0


def _pick(rng: random.Random, verbatim: tuple[str, ...], shopper: tuple[str, ...]) -> tuple[str, bool]:
    """A phrase: a shopper phrase with probability :data:`SHOPPER_SHARE` when there is one."""
    use_shopper = bool(shopper) and rng.random() < SHOPPER_SHARE
    options = shopper if use_shopper else verbatim
    return options[rng.randrange(len(options))], use_shopper


def phrase(intent: Intent) -> tuple[str, bool]:
    """``(query text, shopper_words)`` for ``intent``: the same intent always gets the same words.

    Raises:
        KeyError: the intent's type or gender has no vocabulary.
    """
    rng = random.Random(f"{SEED}|{intent.type}|{intent.gender}|{intent.colour}")
    t, shop_t = _pick(rng, *TYPE_PHRASES[intent.type])
    c, shop_c = _pick(rng, *COLOUR_PHRASES.get(intent.colour, ((intent.colour.lower(),), ()))) if intent.colour else ("", False)
    gb = ga = ""
    shop_g = False
    if intent.gender:
        gb, shop_gb = _pick(rng, *GENDER_PHRASES[intent.gender]["before"])
        ga, shop_ga = _pick(rng, *GENDER_PHRASES[intent.gender]["after"])
    templates = TEMPLATES[intent.kind]
    template = templates[rng.randrange(len(templates))]
    if intent.gender:
        shop_g = shop_gb if "{gb}" in template else shop_ga
    text = normalise_query(template.format(t=t, c=c, gb=gb, ga=ga)).lower()
    return text, shop_t or shop_c or shop_g


def plan_queries(products: list[EvalProduct], mix: dict[str, int] | None = None) -> list[PlannedQuery]:
    """The queries of the set for ``products`` (see the module docstring), in a fixed order.

    Args:
        products: catalog rows whose ``attributes`` hold ``type``, ``gender`` and ``colour``.
        mix: queries per intent kind (default :data:`QUERY_MIX`).
    """
    mix = mix or QUERY_MIX
    type_counts = Counter(p.attributes["type"] for p in products)
    types = {t for t, n in type_counts.items() if n >= MIN_TYPE_PRODUCTS and t in TYPE_PHRASES}
    support: Counter[Intent] = Counter()
    for p in products:
        a = p.attributes
        if a["type"] not in types:
            continue
        genders = [a["gender"]] if a["gender"] in GENDER_PHRASES else []
        colours = [a["colour"]] if a["colour"] else []
        for g in [None, *genders]:
            for c in [None, *colours]:
                support[Intent(a["type"], g, c)] += 1
    # a unisex product also satisfies "men" and "women": count it there (grade 3 for those intents)
    for p in products:
        a = p.attributes
        if a["type"] in types and a["gender"] == "Unisex":
            for g in ("Men", "Women"):
                for c in [None, *([a["colour"]] if a["colour"] else [])]:
                    support[Intent(a["type"], g, c)] += 1
    out: list[PlannedQuery] = []
    seen: set[str] = set()
    for kind, n in mix.items():
        eligible = sorted((i for i, count in support.items() if i.kind == kind and count >= MIN_MATCHES),
                          key=lambda i: (i.type, i.gender or "", i.colour or ""))
        chosen = eligible if n >= len(eligible) else random.Random(f"{SEED}|{kind}").sample(eligible, n)
        for intent in chosen:
            text, shopper = phrase(intent)
            if text in seen:
                continue
            seen.add(text)
            out.append(PlannedQuery(f"ft{len(out) + 1}", intent, text, shopper))
    return out


def load_fashion_text(folder: Path, *, mix: dict[str, int] | None = None) -> Dataset:
    """The ``fashion_text`` set from a folder in the format of ``CATALOG_DIR/fashion``.

    Args:
        folder: holds ``styles.csv`` and ``images/<id>.jpg``.
        mix: queries per intent kind (default :data:`QUERY_MIX`; tests use fewer).

    Returns:
        Products with their title and photo (``attributes``: ``type``, ``gender``, ``colour`` as
        spelled in the catalog), 500 text queries and gains 1-3 (see :func:`grade`).

    Raises:
        DatasetError: ``styles.csv`` is missing.
    """
    try:
        rows = list(read_catalog("fashion", Path(folder)))
    except CatalogFormatError as exc:
        raise DatasetError(str(exc)) from None
    skipped = Counter(r.skip_reason for r in rows if r.skip_reason)
    excluded = sum(1 for r in rows if not r.skip_reason and r.specifications.get("articleType") in EXCLUDED_TYPES)
    kept = [r for r in rows if not r.skip_reason and r.specifications.get("articleType") not in EXCLUDED_TYPES]
    kept.sort(key=lambda r: (0, int(r.external_id)) if r.external_id.isdigit() else (1, r.external_id))
    products = [
        EvalProduct(
            id=i, external_id=r.external_id, title=r.title,
            image_path=r.image_path if r.image_path is not None and r.image_path.is_file() else None,
            attributes={"type": r.specifications.get("articleType", ""), "gender": r.specifications.get("gender", ""),
                        "colour": r.specifications.get("baseColour", "")},
        )
        for i, r in enumerate(kept, start=1)
    ]
    planned = plan_queries(products, mix)
    by_type: dict[str, list[EvalProduct]] = {}
    for p in products:
        by_type.setdefault(p.attributes["type"], []).append(p)
    qrels = {}
    for q in planned:
        candidates = [p for t in sorted({q.intent.type, *RELATED.get(q.intent.type, ())}) for p in by_type.get(t, [])]
        qrels[q.id] = {p.id: float(g) for p in candidates if (g := grade(q.intent, p.attributes)) > 0}
    kinds = Counter(q.intent.kind for q in planned)
    shopper = sum(q.shopper_words for q in planned)
    no_photo = sum(p.image_path is None for p in products)
    return Dataset(
        name=NAME, source=Path(folder), products=products, queries=[EvalQuery(q.id, text=q.text) for q in planned],
        qrels=qrels, index_text=True, index_photos=True,
        notes=[
            (f"Catalog: {len(products)} products indexed with their title and photo ({no_photo} without a photo); "
             f"attributes are not indexed. Left out: {excluded} '{', '.join(sorted(EXCLUDED_TYPES))}' products")
            + "".join(f", {n} with {reason}" for reason, n in sorted(skipped.items())) + ".",
            (f"Queries: {len(planned)} ({', '.join(f'{n} {k}' for k, n in kinds.items())}); {shopper} use shopper words "
             "(synonyms, colour and gender words a title rarely contains)."),
            ("Gain 3: type + gender + colour asked; 2: type + gender, another colour; 1: type for another gender, "
             "or a related type; see search.evaluation.fashion_text."),
        ],
    )
