"""The LanceDB baseline: the same products and vectors in a LanceDB table, searched per retriever.

Text goes in one ``text`` column (title, brand, category, description) with LanceDB's native
full-text index (English stemming, stop words, ASCII folding, as ours); each vector field is a
column searched by cosine distance. Up to :data:`EXACT_MAX` rows vector search is exact (a
flat scan); above, each vector column gets an ``IVF_HNSW_SQ`` index, searched with
``refine_factor`` so recall stays comparable with our HNSW at ef=256.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from search.backends.base import Hit

#: Rows up to which vector search is an exact flat scan (no index to build, recall 1).
EXACT_MAX = 20_000
#: Re-rank this many times k candidates with full vectors (LanceDB's recipe for recall >= 0.95).
REFINE_FACTOR = 5
NPROBES = 20
VECTORS = ("text_vector", "image_vector", "fused_vector")
HOW = "create_table + native FTS index (+ IVF_HNSW_SQ per vector column above 20k rows)"


#: Synthetic tables of at least this many rows keep their vectors in float16, as the embedded
#: engine's store does from the same size (``search.backends._vectors.STORE_FLOAT16_MIN``): half
#: the disk and memory (a 1M table in float32 is 8.2 GB of vectors, twice that with IVF_FLAT's copy).
FLOAT16_MIN = 250_000
#: Rows per ``Table.add`` when a synthetic table is written in parts.
APPEND_ROWS = 50_000


def _vectors(mat: np.ndarray, dtype=np.float32) -> pa.FixedSizeListArray:
    mat = np.ascontiguousarray(mat, dtype=dtype)
    return pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1)), mat.shape[1])


def flipkart_table() -> pa.Table:
    """The products and stored embeddings of the bench database (after the ``flipkart`` scenario)."""
    from search.documents import document_text
    from search.models import ProductEmbedding
    from shop.models import Product

    products = list(Product.objects.select_related("brand", "category").filter(embedding__isnull=False).order_by("pk"))
    embs = {e.product_id: e for e in ProductEmbedding.objects.filter(product__in=products)}
    if not products:
        raise SystemExit("The flipkart-lancedb scenario reads the bench database: run the flipkart scenario first.")
    unpack = ProductEmbedding.unpack
    first = np.eye(1, 1280, dtype=np.float32)[0]  # stands in for the 3 products without a photo
    return pa.table({
        "id": pa.array([p.pk for p in products], pa.int64()),
        "text": [document_text(p) for p in products],
        "text_vector": _vectors(np.stack([unpack(embs[p.pk].text_vector) for p in products])),
        "image_vector": _vectors(np.stack([unpack(embs[p.pk].image_features) if embs[p.pk].image_features is not None else first
                                           for p in products])),
        "fused_vector": _vectors(np.stack([unpack(embs[p.pk].fused_vector) for p in products])),
    })


def synthetic_parts(catalog_dir: Path, n: int, anchors=None, rows: int = APPEND_ROWS) -> Iterator[pa.Table]:
    """The same synthetic catalog as the ``synthetic-<n>`` scenario (same seed; vectors around
    ``anchors`` for the scale scenario), with ``price`` and top-level ``category`` columns for
    filters, in tables of about ``rows`` rows; vectors float16 from :data:`FLOAT16_MIN` rows."""
    from bench.synthetic import load_vocabulary, synthetic_batches

    dtype = np.float16 if n >= FLOAT16_MIN else np.float32
    parts, held = [], 0
    for b in synthetic_batches(load_vocabulary(catalog_dir), n, anchors=anchors):
        parts.append(pa.table({
            "id": pa.array(b.ids, pa.int64()),
            "price": pa.array(100.0 + np.arange(len(b.ids)) % 5000, pa.float64()),
            "category": [c[0] if c else "" for c in b.categories],
            "text": [". ".join([t, br, " > ".join(c), d]) for t, br, c, d in zip(b.titles, b.brands, b.categories, b.descriptions, strict=True)],
            "text_vector": _vectors(b.vectors["text"], dtype), "image_vector": _vectors(b.vectors["image"], dtype),
            "fused_vector": _vectors(b.vectors["fused"], dtype),
        }))
        held += len(b.ids)
        if held >= rows:
            yield pa.concat_tables(parts)
            parts, held = [], 0
    if parts:
        yield pa.concat_tables(parts)


def synthetic_table(catalog_dir: Path, n: int, anchors=None) -> pa.Table:
    """:func:`synthetic_parts` as one table (all of it in memory)."""
    return pa.concat_tables(list(synthetic_parts(catalog_dir, n, anchors=anchors)))


def build(folder: Path, data: pa.Table | Iterable[pa.Table], index_type: str = "IVF_HNSW_SQ"):
    """A LanceDB table of ``data`` (one table, or parts appended one by one so that a large
    catalog never sits in memory whole) with its FTS index and, above :data:`EXACT_MAX` rows, a
    vector index of ``index_type`` per vector column (cosine)."""
    import lancedb
    from lancedb.index import FTS

    parts = iter([data] if isinstance(data, pa.Table) else data)
    table = lancedb.connect(str(folder)).create_table("products", next(parts))
    for part in parts:
        table.add(part)
    table.create_index("text", config=FTS(with_position=False))
    if table.count_rows() > EXACT_MAX:
        for column in VECTORS:
            table.create_index(metric="cosine", vector_column_name=column, index_type=index_type)
    return table


def open_table(folder: Path):
    import lancedb

    table = lancedb.connect(str(folder)).open_table("products")
    table.count_rows()
    return table


def fts(table, text: str, k: int) -> list[Hit]:
    rows = table.search(text, query_type="fts", fts_columns="text").select(["id"]).limit(k).to_arrow()
    return [Hit(int(i), float(s)) for i, s in zip(rows["id"].to_pylist(), rows["_score"].to_pylist(), strict=True)]


def knn(table, column: str, vector: np.ndarray, k: int, *, indexed: bool, nprobes: int = NPROBES, refine_factor: int = REFINE_FACTOR,
        ef: int | None = None, where: str | None = None) -> list[Hit]:
    """Cosine kNN on ``column``; on an indexed table with ``nprobes`` IVF partitions, HNSW beam ``ef``
    (LanceDB's default when ``None``) and ``refine_factor`` x k candidates re-ranked with full vectors;
    ``where`` is an SQL filter applied before the search (LanceDB's pre-filter)."""
    q = table.search(np.asarray(vector, np.float32), vector_column_name=column).distance_type("cosine").select(["id"]).limit(k)
    if where:
        q = q.where(where, prefilter=True)
    if indexed:
        q = q.nprobes(nprobes)
        if refine_factor:
            q = q.refine_factor(refine_factor)
        if ef:
            q = q.ef(ef)
    rows = q.to_arrow()
    return [Hit(int(i), 1.0 - float(d)) for i, d in zip(rows["id"].to_pylist(), rows["_distance"].to_pylist(), strict=True)]
