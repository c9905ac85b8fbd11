"""Judged data sets as catalogs, queries and graded relevance (qrels), read from ``CATALOG_DIR``.

Each loader reads a folder in the format of ``CATALOG_DIR/<name>`` (see that folder's README)
and raises :class:`DatasetError` naming the file it expected when one is missing. Nothing here
touches the database: products become :class:`EvalProduct` rows that the harness indexes into a
throwaway engine.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

from search.evaluation.fashion_text import load_fashion_text
from search.evaluation.judged import SEED, Dataset, DatasetError, EvalProduct, EvalQuery, TrainingPairs
from search.evaluation.multilingual import load_multilingual
from search.query import normalise_query
from shop.importers import CatalogFormatError, read_catalog

DATASETS = ("crowdflower", "grocery", "fashion", "fashion_text", "multilingual")
#: Data sets ranked by words against a catalog's text (the others search photos).
TEXT_DATASETS = ("crowdflower", "fashion_text", "multilingual")
#: Data sets that read another set's folder of ``CATALOG_DIR`` (the rest read their own name).
DATA_FOLDERS = {"fashion_text": "fashion", "multilingual": "flipkart"}
#: Share of fashion products whose (photo, title) pairs may train a fusion head; the other
#: products form the photo-only catalog that is evaluated, so no evaluated photo was trained on.
FASHION_TRAIN_SHARE = 0.8
#: Fashion queries kept (a seeded sample of the distinct colour/type/gender combinations of the
#: evaluated catalog): 300 keeps a run to seconds and the mean's standard error near 0.015.
FASHION_MAX_QUERIES = 300
CROWDFLOWER_COLUMNS = ("query", "product_title", "product_description", "median_relevance")



def require_file(path: Path) -> Path:
    """``path`` if it is a file.

    Raises:
        DatasetError: it is not, naming the file expected.
    """
    if not path.is_file():
        raise DatasetError(f"Expected the file {path}, which does not exist.")
    return path


def load_dataset(name: str, folder: Path, *, split: str = "val") -> Dataset:
    """Read data set ``name`` (one of :data:`DATASETS`) from ``folder``.

    Args:
        name: ``crowdflower``, ``grocery``, ``fashion``, ``fashion_text`` or ``multilingual``.
        folder: a folder in the format of ``CATALOG_DIR/<name>`` (``fashion_text``: of ``CATALOG_DIR/fashion``;
            ``multilingual``: of ``CATALOG_DIR/flipkart``).
        split: Grocery only: the photos listed in ``<split>.txt`` are the queries.

    Raises:
        DatasetError: unknown name, missing folder or file, or a file in the wrong format.
    """
    loaders = {"crowdflower": load_crowdflower, "grocery": lambda f: load_grocery(f, split=split), "fashion": load_fashion,
               "fashion_text": _load_fashion_text, "multilingual": load_multilingual}
    if name not in loaders:
        raise DatasetError(f"Unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"Expected the data set folder {folder}, which does not exist.")
    return loaders[name](folder)


def _load_fashion_text(folder: Path) -> Dataset:
    return load_fashion_text(folder)


# -- CrowdFlower -------------------------------------------------------------------------------------
def load_crowdflower(folder: Path) -> Dataset:
    """CrowdFlower Search Results Relevance (``train.csv``): text queries over the judged products.

    The catalog is the union of the judged products, deduplicated on (title, description); they
    have no photos. Gain = ``median_relevance - 1`` (0 irrelevant ... 3 perfect); a (query,
    product) pair judged more than once gets the mean of its gains.

    Raises:
        DatasetError: ``train.csv`` missing or without the columns of :data:`CROWDFLOWER_COLUMNS`.
    """
    path = require_file(folder / "train.csv")
    products: dict[tuple[str, str], EvalProduct] = {}
    queries: dict[str, EvalQuery] = {}
    gains: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CROWDFLOWER_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path} has no column {', '.join(missing)}; expected columns: {', '.join(CROWDFLOWER_COLUMNS)}.")
        for line, rec in enumerate(reader, start=2):
            text = normalise_query(rec["query"])
            title, description = (rec["product_title"] or "").strip(), (rec["product_description"] or "").strip()
            try:
                gain = float(rec["median_relevance"]) - 1
            except (TypeError, ValueError):
                raise DatasetError(f"{path}, line {line}: median_relevance {rec['median_relevance']!r} is not a number 1-4.") from None
            if not text or not (title or description) or not 0 <= gain <= 3:
                raise DatasetError(f"{path}, line {line}: needs a query, a product title or description and median_relevance 1-4.")
            key = (title, description)
            if key not in products:
                products[key] = EvalProduct(id=len(products) + 1, external_id=rec.get("id") or str(line), title=title, description=description)
            if text not in queries:
                queries[text] = EvalQuery(id=f"q{len(queries) + 1}", text=text)
            gains[queries[text].id][products[key].id].append(gain)
    qrels = {qid: {pid: sum(g) / len(g) for pid, g in judged.items()} for qid, judged in gains.items()}
    conflicting = sum(1 for judged in gains.values() for g in judged.values() if len(set(g)) > 1)
    return Dataset(
        name="crowdflower", source=folder, products=list(products.values()), queries=list(queries.values()), qrels=qrels,
        index_photos=False,
        notes=[
            "Catalog: the union of the judged products (deduplicated on title + description), text only.",
            f"Gain = median_relevance - 1; {conflicting} (query, product) pairs judged differently twice or more get the mean gain.",
        ],
    )


# -- Grocery -------------------------------------------------------------------------------------------
def load_grocery(folder: Path, *, split: str = "val") -> Dataset:
    """Grocery Store Dataset: shop-floor photos (``<split>.txt``) must find their product among the 81.

    Products carry their iconic photo and description (``classes.csv``, read by the catalog
    importer); a query photo's only relevant product is its fine class (gain 1). Photos of
    ``train.txt`` paired with their product's text are the training pairs (when ``split`` is not
    ``train``).

    Raises:
        DatasetError: ``classes.csv`` or ``<split>.txt`` missing, or a line that is not
            ``path, fine_id, coarse_id`` with a known class.
    """
    if not split or "/" in split or split.startswith("."):
        raise DatasetError(f"Split name {split!r} must be a plain file stem such as 'val' or 'train'.")
    try:
        rows = [r for r in read_catalog("grocery", folder) if r.image_path is not None]
    except CatalogFormatError as exc:
        raise DatasetError(str(exc)) from None
    products, by_class = [], {}
    for row in rows:
        product = EvalProduct(
            id=len(products) + 1, external_id=row.external_id, title=row.title, description=row.description,
            category_path=row.category_path, image_path=row.image_path if row.image_path.is_file() else None,
        )
        products.append(product)
        by_class[int(row.specifications["class_id"])] = product
    queries, qrels = [], {}
    for i, (photo, class_id) in enumerate(_grocery_list(folder, split), start=1):
        if class_id not in by_class:
            raise DatasetError(f"{folder / (split + '.txt')}: class id {class_id} is not in classes.csv.")
        qid = f"{split}-{i}"
        queries.append(EvalQuery(id=qid, image_path=photo))
        qrels[qid] = {by_class[class_id].id: 1.0}
    training = None
    if split != "train" and (folder / "train.txt").is_file():
        pairs = [(photo, by_class[c]) for photo, c in _grocery_list(folder, "train") if c in by_class]
        training = TrainingPairs([p for p, _ in pairs], [prod.encoder_text for _, prod in pairs], [prod.id for _, prod in pairs])
    return Dataset(
        name="grocery", source=folder, products=products, queries=queries, qrels=qrels, training=training,
        notes=[
            f"Queries: the {len(queries)} photos of {split}.txt; the relevant product is the photo's fine class.",
            f"Catalog: {len(products)} products, each with its iconic photo and description.",
        ],
    )


def _grocery_list(folder: Path, split: str) -> list[tuple[Path, int]]:
    path = require_file(folder / f"{split}.txt")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[1].isdigit():
            raise DatasetError(f"{path}, line {n}: expected 'path, fine_class_id, coarse_class_id', got {line!r}.")
        out.append((folder / parts[0], int(parts[1])))
    return out


# -- fashion -------------------------------------------------------------------------------------------
def fashion_query_text(colour: str, article_type: str, gender: str) -> str:
    """``"blue tshirts for men"``: what a shopper types for a colour, an article type and a gender."""
    return f"{colour} {article_type} for {gender}".lower()


def load_fashion(folder: Path, *, max_queries: int = FASHION_MAX_QUERIES, train_share: float = FASHION_TRAIN_SHARE) -> Dataset:
    """Fashion catalog, text -> photo: products indexed with their photo only, relevance from attributes.

    A seeded ``train_share`` of the products (with a photo) gives (photo, title) training pairs;
    the rest is the evaluated catalog, indexed photo-only. Queries are the distinct
    ``"<colour> <article type> for <gender>"`` combinations of the evaluated catalog (a seeded
    sample of ``max_queries``). Gain 2: colour, article type and gender match; 1: article type
    and gender match.

    Raises:
        DatasetError: ``styles.csv`` missing.
    """
    try:
        rows = list(read_catalog("fashion", folder))
    except CatalogFormatError as exc:
        raise DatasetError(str(exc)) from None
    usable = [r for r in rows if r.image_path is not None and r.image_path.is_file()]
    usable.sort(key=lambda r: int(r.external_id) if r.external_id.isdigit() else r.external_id)
    rng = random.Random(SEED)
    order = list(range(len(usable)))
    rng.shuffle(order)
    n_train = int(round(train_share * len(usable)))
    train_rows = [usable[i] for i in sorted(order[:n_train])]
    test_rows = [usable[i] for i in sorted(order[n_train:])]

    products = []
    for row in test_rows:
        spec = row.specifications
        products.append(EvalProduct(
            id=len(products) + 1, external_id=row.external_id, title=row.title, image_path=row.image_path,
            attributes={"colour": spec.get("baseColour", "").lower(), "type": spec.get("articleType", "").lower(),
                        "gender": spec.get("gender", "").lower()},
        ))
    combos = sorted({(p.attributes["colour"], p.attributes["type"], p.attributes["gender"]) for p in products
                     if all(p.attributes.values())})
    n_combos = len(combos)
    if n_combos > max_queries:
        combos = sorted(random.Random(SEED).sample(combos, max_queries))
    queries, qrels = [], {}
    for i, (colour, kind, gender) in enumerate(combos, start=1):
        qid = f"f{i}"
        queries.append(EvalQuery(id=qid, text=fashion_query_text(colour, kind, gender)))
        qrels[qid] = {
            p.id: 2.0 if p.attributes["colour"] == colour else 1.0
            for p in products if p.attributes["type"] == kind and p.attributes["gender"] == gender
        }
    titled = [r for r in train_rows if r.title]
    group_of: dict[str, int] = {}
    training = TrainingPairs(
        [r.image_path for r in titled], [r.title for r in titled], [group_of.setdefault(r.title, len(group_of)) for r in titled],
    )
    return Dataset(
        name="fashion", source=folder, products=products, queries=queries, qrels=qrels, index_text=False, training=training,
        notes=[
            f"Catalog: {len(products)} held-out products ({1 - train_share:.0%} of {len(usable)} with a photo, seed {SEED}), "
            "indexed with their photo only (no words, no BM25).",
            f"A trained fusion head sees only the (photo, title) pairs of the other {len(train_rows)} products: no evaluated photo is trained on.",
            f"Queries: {len(queries)} '<colour> <article type> for <gender>' combinations of the catalog"
            f"{f' (a seeded sample of the {n_combos} that occur)' if n_combos > len(combos) else ''}; gain 2 all match, 1 type + gender.",
        ],
    )
