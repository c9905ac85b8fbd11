"""Product -> text for the encoders, and Product + embeddings -> SearchDocument for the engines."""

from __future__ import annotations

from search.backends.base import SearchDocument
from search.identifiers import document_identifiers
from search.models import ProductEmbedding
from shop.models import Category, Product

#: Characters of description fed to the text encoder; MiniLM reads 128 tokens (~600 chars),
#: so more is wasted tokenisation.
DESCRIPTION_CHARS_FOR_ENCODER = 1000


def category_parts(product: Product) -> list[str]:
    """Root-first category names, from the stored path (no query per ancestor)."""
    return product.category.path.split(Category.PATH_SEPARATOR) if product.category_id else []


def document_text(product: Product) -> str:
    """What the text encoder reads: title, brand, category path and the start of the description."""
    return compose_document_text(
        title=product.title, brand=product.brand.name if product.brand_id else "",
        category_path=category_parts(product), description=product.description or "",
    )


def compose_document_text(*, title: str, brand: str = "", category_path: list[str] | None = None, description: str = "") -> str:
    """``"<title>. <brand>. <A > B > C>. <description start>"`` with empty parts left out.

    Shared by :func:`document_text` and code that encodes catalog rows without a database
    (benchmarks, evaluation), so both feed the encoder the same text.
    """
    parts = [title.strip(), brand.strip(), " > ".join(category_path or []), description.strip()[:DESCRIPTION_CHARS_FOR_ENCODER]]
    return ". ".join(p for p in parts if p)


def to_search_document(product: Product, embedding: ProductEmbedding | None, extra: dict | None = None) -> SearchDocument:
    """Build the engine document; vectors come from the stored embedding (missing ones are left out).

    Args:
        product: the product (with brand and category selected).
        embedding: its stored text, image and fused vectors, or ``None``.
        extra: vector field -> ``(dim,)`` float32 vector of additional text encoders
            (``ADDITIONAL_TEXT_ENCODERS``, stored as ``ProductVector`` rows).
    """
    vectors = {}
    if embedding is not None:
        vectors["text"] = ProductEmbedding.unpack(embedding.text_vector)
        if embedding.image_features is not None:
            vectors["image"] = ProductEmbedding.unpack(embedding.image_features)
        vectors["fused"] = ProductEmbedding.unpack(embedding.fused_vector)
    vectors.update(extra or {})
    return SearchDocument(
        id=product.pk,
        external_id=product.external_id or "",
        title=product.title,
        brand=product.brand.name if product.brand_id else "",
        category_path=category_parts(product),
        description=product.description or "",
        price=float(product.price) if product.price is not None else None,
        rating=product.rating,
        vectors=vectors,
        identifiers=document_identifiers(
            external_id=product.external_id or "", title=product.title,
            specifications=product.specifications if isinstance(product.specifications, dict) else None,
            source_row=product.source_row if isinstance(product.source_row, dict) else None,
        ),
    )
