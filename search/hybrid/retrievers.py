"""The retrievers of a hybrid query: one list of names, the vector field each kNN reads, their weights.

Every other place reads the names from here: ``SEARCH_WEIGHTS`` keys are checked against
:data:`WEIGHT_KEYS` (``search.checks``), the pipeline names each retrieval it asks an engine
for (:mod:`search.hybrid.retrieve`; engines receive the names inside the requests, as
Elasticsearch's child retrievers), and the relevance harness (``search.evaluation``) runs
single retrievers by these names.
"""

from __future__ import annotations

from django.conf import settings

from search.backends.base import VECTOR_FIELDS  # noqa: F401  (the engines' fields; one kNN retriever each)

BM25 = "bm25"
#: BM25 over the English words of a Chinese or Hindi query's dictionary translation
#: (:mod:`search.translation`); runs only for such a query, with translation on.
BM25_TRANSLATED = "bm25_translated"
TEXT_KNN = "text_knn"
IMAGE_KNN = "image_knn"
FUSED_KNN = "fused_knn"
#: kNN over multilingual-e5-small's field (``ADDITIONAL_TEXT_ENCODERS`` ``e5-small``); runs when that field is in service.
TEXT_E5_KNN = "text_e5_knn"
#: kNN over shoppers' own photos that led to clicks (``search.clicks.selectors``), not an engine field.
PHOTO_REFS_KNN = "photo_refs_knn"
#: Not a retriever: the weight of the click prior (``search.hybrid.click_prior``).
CLICKS = "clicks"
#: Not a retriever: the exact-match boost's score part (``search.hybrid.fusion.exact_boost``).
EXACT = "exact"

#: kNN retriever -> the vector field it searches.
KNN_FIELDS = {TEXT_KNN: "text", IMAGE_KNN: "image", FUSED_KNN: "fused", TEXT_E5_KNN: "text_e5"}
#: Vector field -> the kNN retriever that searches it.
KNN_NAME = {vector_field: name for name, vector_field in KNN_FIELDS.items()}
#: Every retriever.
RETRIEVERS = (BM25, TEXT_KNN, IMAGE_KNN, FUSED_KNN, PHOTO_REFS_KNN, TEXT_E5_KNN, BM25_TRANSLATED)
#: Every key ``SEARCH_WEIGHTS`` (and a per-request weight override) may hold.
WEIGHT_KEYS = (*RETRIEVERS, CLICKS)
#: Plain labels of the parts of a result's score explanation: name -> (short label, what it means).
RETRIEVER_LABELS = {
    BM25: ("BM25", "Keyword match on title, brand, category and description"),
    BM25_TRANSLATED: ("BM25, translated", "Keyword match on the English words of your query's dictionary translation"),
    TEXT_KNN: ("Text kNN", "Meaning of the words (MiniLM text vectors)"),
    FUSED_KNN: ("Fused kNN", "Words and photos in one space (fused vectors)"),
    IMAGE_KNN: ("Image kNN", "Looks like your photo (EfficientNet image vectors)"),
    TEXT_E5_KNN: ("e5 kNN", "Meaning of the words, in any language (multilingual-e5-small vectors)"),
    PHOTO_REFS_KNN: ("Shoppers' photos", "Looks like photos other shoppers searched with before clicking this product"),
    CLICKS: ("Click prior", "What shoppers clicked, corrected for position (0.5 = no evidence)"),
    EXACT: ("Exact match", "Holds every word of the query (ranked before products that do not)"),
}


def blend_weights(*, space: str | None, photo: bool, overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Retriever weights for one query: ``SEARCH_WEIGHTS``, then ``SEARCH_PHOTO_WEIGHTS_TRAINED_HEAD``
    for a photo query whose fused vector comes from a trained head (``space == "fusion"``), then
    ``overrides`` (per-request experiments).

    Args:
        space: ``QueryVectors.space`` (``"bridge"``, ``"fusion"`` or ``None``).
        photo: the query has a photo (photo or photo + text).
        overrides: weights laid over the rest.
    """
    head = settings.SEARCH_PHOTO_WEIGHTS_TRAINED_HEAD if photo and space == "fusion" else {}
    return {**settings.SEARCH_WEIGHTS, **head, **(overrides or {})}
