"""The reindex procedure: rebuild the whole index beside the live one, then swap it in.

The new build's fused vectors are made in the active fusion space (a newly trained head
included) and record it; search keeps using the live build, and its space, until the swap.

What the products' states say follows the *live* index: products written into the new build
are marked indexed (or failed) only after the swap, each with the compare-and-set of
:func:`search.services.index_states_record`. A rebuild that dies before the swap (an error, or
the process killed) therefore leaves the live index and every state as they were; the
backend only ever keeps or swaps in a build it completed (see ``rebuild`` of the backends).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured

from search.backends import get_backend, load_backend
from search.backends.base import BaseSearchBackend, SearchBackendError
from search.embedding import encoding
from search.embedding.spaces import SpaceRef
from search.services import IndexReport, index_states_record, products_write
from shop.models import Product

logger = logging.getLogger(__name__)


class RebuildError(Exception):
    """The rebuild could not finish; the live index and the products' states were kept. ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class RebuildReport:
    """What :func:`index_rebuild` did.

    Attributes:
        before: documents in the live index before the rebuild.
        after: documents in the live index after the swap.
        took_s: wall time of the whole procedure, seconds.
        space: the fusion space of the new build's fused vectors.
        failed: product id -> reason, for products marked failed (photo refused: indexed by
            text only; refused by the engine: not in the index).
        caught_up: products written again (or for the first time) just before the swap,
            because they changed or appeared during the build.
        marked: products marked indexed or failed after the swap.
        changed: products changed after the catch-up; left pending and enqueued again.
    """

    before: int
    after: int
    took_s: float
    space: SpaceRef
    failed: dict[int, str] = field(default_factory=dict)
    caught_up: list[int] = field(default_factory=list)
    marked: int = 0
    changed: list[int] = field(default_factory=list)

    @property
    def products_per_s(self) -> float:
        return self.after / self.took_s if self.took_s else 0.0


class _Written:
    """What has been written into the new build: the merged reports of its batches."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.failed: dict[int, str] = {}
        self.rejected: set[int] = set()

    def add(self, batch: IndexReport) -> None:
        for pid in [*batch.seen, *batch.missing]:  # written again, or gone: only the latest write counts
            self.seen.pop(pid, None)
            self.failed.pop(pid, None)
            self.rejected.discard(pid)
        self.seen.update(batch.seen)
        self.failed.update(batch.failed)
        self.rejected.update(batch.rejected)

    def report(self) -> IndexReport:
        """The whole build as one report, for :func:`~search.services.index_states_record`."""
        return IndexReport(indexed=[pid for pid in self.seen if pid not in self.failed], failed=dict(self.failed),
                           seen=dict(self.seen), rejected=sorted(self.rejected))


def index_rebuild(
    *,
    backend: BaseSearchBackend | str = "default",
    batch_size: int = 64,
    re_embed: bool = False,
    keep: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Rebuild the index with no downtime: build beside the live one, catch up, verify, swap.

    1. Every product is embedded (stored encoder outputs reused unless ``re_embed``) and
       written into a new build, in batches of ``batch_size``; nothing is marked.
    2. With writes to the live index blocked, products whose ``index_version`` differs from the
       one written (edited during the build) or that are new are written again, deleted ones
       are removed, and every product must be in the build (except those the engine refused).
    3. The backend records the build as complete and swaps it in; then the products written
       are marked indexed or failed, each only if unchanged since it was read. Products changed
       after the catch-up stay pending and are enqueued again.

    Args:
        backend: a backend, or a ``SEARCH_BACKENDS`` alias.
        batch_size: products embedded and written per batch (>= 1).
        re_embed: re-encode every text and photo, even unchanged ones.
        keep: previous complete builds kept for rollback (``None``: the backend's default, 1).
        progress: called after each batch with (products done, products in total).

    Returns:
        What was done; see :class:`RebuildReport`.

    Raises:
        ValueError: ``batch_size`` < 1 or ``keep`` < 0.
        RebuildError: the backend cannot be used, the build failed or misses products; the
            live index and every product's state are unchanged.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if keep is not None and keep < 0:
        raise ValueError("keep must be 0 or more")
    t0 = time.perf_counter()
    alias = backend if isinstance(backend, str) else "given"
    try:
        if isinstance(backend, str):
            backend = get_backend(alias) if alias == "default" else load_backend(alias)
        before = backend.count()
    except (SearchBackendError, ImproperlyConfigured) as exc:
        raise RebuildError(f"The {alias!r} search backend cannot be used: {exc}") from exc

    space = encoding.get_space()  # loads and checks the active head; the bridge if it cannot be used
    target = SpaceRef(space.name, space.version, space.dim)
    written = _Written()
    caught_up: list[int] = []

    def catch_up(new: BaseSearchBackend) -> None:
        # Runs with writes to the live index blocked: apply what changed during the build.
        current = dict(Product.objects.values_list("pk", "index_version"))
        stale = sorted(pid for pid, version in current.items() if written.seen.get(pid) != version)
        caught_up.extend(stale)
        for start in range(0, len(stale), batch_size):
            written.add(products_write(product_ids=stale[start:start + batch_size], backend=new, force=re_embed))
        gone = sorted(new.ids() - set(current))
        if gone:
            new.delete(gone)
        written.add(IndexReport(missing=sorted(set(written.seen) - set(current))))
        new.refresh()
        # Every product must be in the new index, except those the engine refused (recorded as failed).
        absent = set(current) - new.ids() - written.rejected
        if absent:
            raise RebuildError(
                f"The new index lacks {len(absent)} of {len(current)} products (e.g. {sorted(absent)[:5]}); the live index was kept."
            )

    ids = list(Product.objects.order_by("pk").values_list("pk", flat=True))
    try:
        with backend.rebuild(before_swap=catch_up, keep=keep, vector_dims=encoding.vector_dims(space.dim), space=target.as_dict()) as new:
            for start in range(0, len(ids), batch_size):
                written.add(products_write(product_ids=ids[start:start + batch_size], backend=new, force=re_embed))
                if progress is not None:
                    progress(min(start + batch_size, len(ids)), len(ids))
    except SearchBackendError as exc:
        raise RebuildError(f"Reindex failed, the live index was kept: {exc}") from exc

    # The new build is live: the states may now say so.
    report = index_states_record(written.report())
    if report.changed:
        from workers.tasks import enqueue_index  # the tasks module imports this app's services

        logger.info("%d products changed after the catch-up; enqueued again", len(report.changed))
        enqueue_index(report.changed)
    return RebuildReport(
        before=before, after=backend.count(), took_s=time.perf_counter() - t0, space=target,
        failed=dict(report.failed), caught_up=caught_up, marked=len(report.indexed) + len(report.failed),
        changed=report.changed,
    )
