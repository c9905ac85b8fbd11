"""Stored embeddings: the database is the source of truth for vectors; indexes are rebuilt from it."""

from __future__ import annotations

import numpy as np
from django.db import models

# The click feedback models are defined in their own module; importing them here registers them with the app.
from search.clicks.models import ClickStat, DiscardReason, EventDiscard, PhotoReference, SearchClick, SearchImpression  # noqa: F401


class ProductEmbedding(models.Model):
    """Encoder outputs of one product, so a reindex or a new fusion head needs no re-encoding.

    Vectors are raw little-endian float32 bytes (``image_logits`` float16): text ``(text_dim,)``
    from ``TEXT_ENCODER`` (MiniLM: 384), image features ``(image_dim,)`` from ``IMAGE_ENCODER``
    (EfficientNet-Lite0: 1280), ImageNet logits ``(1000,)``, fused ``(dim,)`` in the fusion space
    named by ``space_version``. The hashes name the encoder too (``search.services.source_hash``),
    so switching an encoder re-encodes at the next reindex. Vectors of additional text encoders
    (``ADDITIONAL_TEXT_ENCODERS``) live in :class:`ProductVector`, one row per vector field.
    Which products' fused vectors are out of the live index's space is read from
    ``space_version`` (indexed; see ``search.freshness``).
    """

    product = models.OneToOneField("shop.Product", primary_key=True, related_name="embedding", on_delete=models.CASCADE)
    text_vector = models.BinaryField()
    text_hash = models.CharField(max_length=40, help_text="sha1 of the encoded text; unchanged text is not re-encoded")
    image_features = models.BinaryField(null=True)
    image_logits = models.BinaryField(null=True)
    image_hash = models.CharField(max_length=40, blank=True, help_text="sha1 of the encoded photo's bytes")
    fused_vector = models.BinaryField()
    space_version = models.CharField(max_length=64, db_index=True, help_text="fusion space the fused vector lives in")
    consistency = models.FloatField(
        null=True, blank=True, db_index=True,
        help_text="photo-text consistency: cosine of the projected text and photo in space_version's space "
                  "(None without a photo); low values suggest a wrong photo (search.consistency)",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Embeddings of product {self.product_id}"

    @staticmethod
    def pack(vector: np.ndarray | None, dtype=np.float32) -> bytes | None:
        return None if vector is None else np.asarray(vector, dtype=dtype).tobytes()

    @staticmethod
    def unpack(data: bytes | memoryview | None, dtype=np.float32) -> np.ndarray | None:
        return None if data is None else np.frombuffer(bytes(data), dtype=dtype).astype(np.float32)



class ProductVector(models.Model):
    """One product's vector in one additional vector field (an ``ADDITIONAL_TEXT_ENCODERS`` encoder's).

    A generic row, so that an encoder added later stores its vectors with no schema change: the
    field names the engines' vector field (the encoder's spec's ``vector_field``), ``encoder`` the
    registry name that made it. ``vector`` is raw little-endian float32 bytes ``(dim,)``,
    L2-normalised; ``source_hash`` is the hash of the encoded text (unchanged text is not re-encoded).
    """

    product = models.ForeignKey("shop.Product", related_name="vectors", on_delete=models.CASCADE)
    field = models.CharField(max_length=64, help_text="the search engines' vector field, e.g. text_e5")
    encoder = models.CharField(max_length=64, help_text="registry name of the encoder that made the vector")
    vector = models.BinaryField()
    source_hash = models.CharField(max_length=40, help_text="sha1 of the encoder and the encoded text")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["product", "field"], name="search_productvector_product_field")]

    def __str__(self) -> str:
        return f"{self.field} vector of product {self.product_id}"
