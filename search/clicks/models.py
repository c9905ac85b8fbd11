"""Search events (impressions, clicks), their aggregates, and shoppers' photo references.

No personal data: a session (or visitor cookie, :mod:`search.clicks.visitors`) is stored only as an
HMAC of its id keyed with ``SECRET_KEY`` (see :func:`search.clicks.guards.session_hash`), IP
addresses are never stored (the per-IP rate limit lives in the ``state`` cache, hashed, for one window), and a photo query keeps only its image vector.
Rows older than ``CLICK_RETENTION_DAYS`` are deleted by ``manage.py purge_events``.
"""

from __future__ import annotations

import numpy as np
from django.db import models

from search.embedding.encoders import image_dim


class DiscardReason(models.TextChoices):
    """Why an event was not counted. Every discard also increments :class:`EventDiscard`."""

    BOT = "bot", "Known bot user agent"
    DUPLICATE = "duplicate", "Already counted for this session, query and product in the window"
    RATE_SESSION = "rate_session", "Session over its rate limit"
    RATE_IP = "rate_ip", "IP address over its rate limit"
    PRODUCT_CAP = "product_cap", "Product over its counted-click cap for the window"
    SESSION_MISMATCH = "session_mismatch", "Click from another session than the impression's"
    EXPIRED = "expired", "Impression too old"
    NOT_IN_IMPRESSION = "not_in_impression", "Product not shown in that impression"
    POSITION_MISMATCH = "position_mismatch", "Position differs from where the product was shown"
    BAD_TOKEN = "bad_token", "Impression token forged or malformed"
    UNKNOWN_IMPRESSION = "unknown_impression", "No such impression (purged or never recorded)"
    UNKNOWN_PRODUCT = "unknown_product", "No such product"
    MALFORMED = "malformed", "Malformed event"
    TOO_LARGE = "too_large", "Payload too large"


class SearchImpression(models.Model):
    """One results page as a shopper saw it.

    ``product_ids[i]`` was shown at absolute position ``offset + i + 1`` (page position ``i + 1``).
    """

    query = models.CharField(max_length=200, db_index=True, help_text="normalised, lower-cased; empty for a photo-only query")
    filters = models.JSONField(default=dict, blank=True)
    product_ids = models.JSONField(default=list)
    page = models.PositiveIntegerField(default=1)
    offset = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0, help_text="results for the query (0 = zero-result query)")
    session_hash = models.CharField(max_length=64, db_index=True, help_text="HMAC-SHA256 of the session id; never the id itself")
    created = models.DateTimeField(db_index=True)
    is_image_query = models.BooleanField(default=False)
    image_vector = models.BinaryField(null=True, help_text="the query photo's (1280,) float32 image vector; never the photo")

    class Meta:
        indexes = [models.Index(fields=["query", "created"])]

    def __str__(self) -> str:
        return f"Impression {self.pk} of {self.query or '(photo)'!r}"

    def position_of(self, product_id: int) -> int | None:
        """Absolute 1-based position of ``product_id`` on this page, or ``None`` if it was not shown."""
        try:
            return self.offset + list(self.product_ids).index(int(product_id)) + 1
        except ValueError:
            return None

    def query_image_vector(self) -> np.ndarray | None:
        """The query photo's ``(image_dim,)`` float32 vector, or ``None`` (no photo, or one encoded by another
        image encoder than ``IMAGE_ENCODER``, whose width differs)."""
        if self.image_vector is None:
            return None
        vec = np.frombuffer(bytes(self.image_vector), dtype=np.float32)
        return vec if vec.shape == (image_dim(),) else None


class SearchClick(models.Model):
    """A click on a result. ``counted`` is False when a guard discarded it (``discard_reason`` says which)."""

    impression = models.ForeignKey(SearchImpression, related_name="clicks", on_delete=models.CASCADE)
    product = models.ForeignKey("shop.Product", related_name="search_clicks", on_delete=models.CASCADE)
    position = models.PositiveIntegerField()
    session_hash = models.CharField(max_length=64)
    created = models.DateTimeField(db_index=True)
    counted = models.BooleanField(default=True)
    discard_reason = models.CharField(max_length=40, choices=DiscardReason.choices, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["session_hash", "product", "created"]),
            models.Index(fields=["product", "counted", "created"]),
        ]

    def __str__(self) -> str:
        return f"Click on {self.product_id} at {self.position}"


class ClickStat(models.Model):
    """Aggregated click evidence and prior of one (query, product); ``query == ""`` is the product's global popularity.

    Written by :func:`search.clicks.aggregates.click_aggregates_refresh`, read by the search selector in one
    query per search (never the event log).
    """

    GLOBAL = ""

    query = models.CharField(max_length=200, blank=True)
    product = models.ForeignKey("shop.Product", related_name="click_stats", on_delete=models.CASCADE)
    impressions = models.FloatField(default=0.0)
    expected = models.FloatField(default=0.0, help_text="expected clicks under the position-based model (decayed)")
    clicks = models.FloatField(default=0.0)
    sessions = models.FloatField(default=0.0)
    prior = models.FloatField(default=0.5, help_text="click prior in [0, 1]; 0.5 = no evidence")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["query", "product"], name="unique_click_stat")]

    def __str__(self) -> str:
        return f"{self.query or '(all queries)'} / {self.product_id}: {self.prior:.3f}"


class PhotoReference(models.Model):
    """A shopper's query-photo vector that led to a counted click on ``product``: an extra reference for photo search."""

    product = models.ForeignKey("shop.Product", related_name="photo_references", on_delete=models.CASCADE)
    vector = models.BinaryField(help_text="(1280,) float32 L2-normalised image vector")
    weight = models.FloatField(default=1.0, help_text="before time decay")
    created = models.DateTimeField(db_index=True)
    click = models.OneToOneField(SearchClick, null=True, blank=True, related_name="photo_reference", on_delete=models.SET_NULL)

    def __str__(self) -> str:
        return f"Photo reference {self.pk} of {self.product_id}"


class EventDiscard(models.Model):
    """Discarded events per day, kind (``click``, ``impression``) and reason (``search_status`` shows them)."""

    day = models.DateField()
    kind = models.CharField(max_length=20)
    reason = models.CharField(max_length=40, choices=DiscardReason.choices)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "kind", "reason"], name="unique_event_discard")]

    def __str__(self) -> str:
        return f"{self.day} {self.kind} {self.reason}: {self.count}"
