"""Writing to Elasticsearch: ``_bulk`` indexing and deletes, retried while an alias swap blocks writes.

Part of :class:`~search.backends.elasticsearch.backend.ElasticsearchSearchBackend` (a mixin
reading its client, targets and params).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from elasticsearch import helpers

from search.backends.base import DocumentsRejected, SearchBackendError, SearchDocument, SearchUnavailable
from search.backends.elasticsearch import queries as es_queries
from search.backends.elasticsearch.client import translated_errors

#: Documents per ``_bulk`` request and the byte cap per request. A product with all three
#: vectors is ~25 kB of JSON (2,048 floats at ~11 characters plus text), so 500 documents make
#: ~12 MB requests, under the cap; Elastic's guidance is 5-15 MB per bulk request.
BULK_CHUNK_SIZE = 500
BULK_MAX_BYTES = 15 * 1024 * 1024
#: Retries of documents the cluster answered 429 (too many requests) for, with backoff from
#: ``BULK_BACKOFF_S`` doubling up to 30 s; after them the batch fails as transient and the
#: Celery task retries it whole (indexing by id is idempotent).
BULK_MAX_RETRIES = 3
BULK_BACKOFF_S = 1.0
#: Bulk item statuses that are transient (the cluster was busy or a shard was moving).
TRANSIENT_ITEM_STATUSES = {429, 502, 503, 504}
#: How long a write to the live index waits while it is write-blocked for an alias swap (the
#: swap's ``before_swap`` catch-up takes seconds), and how often it tries again.
WRITE_BLOCK_WAIT_S = 60.0
WRITE_BLOCK_RETRY_S = 0.2


class _WriteBlocked(SearchUnavailable):
    """Documents refused because the index is write-blocked (an alias swap is in progress)."""

    def __init__(self, message: str, ids: set[int], written: list[int], refused: dict[int, str]):
        super().__init__(message)
        self.ids, self.written, self.refused = ids, written, refused


_FIELD_RE = re.compile(r"field \[([^\]]+)\]")


class BulkWrites:
    """``add_bulk``, ``delete`` and ``refresh`` of the Elasticsearch backend."""

    def add_bulk(self, docs: Sequence[SearchDocument]) -> None:
        """Index ``docs`` through the write alias (or into the build being filled).

        Raises:
            ValueError: a document has a vector field the index lacks or of the wrong
                dimension (nothing of the batch is written).
            DocumentsRejected: the cluster refused some documents (e.g. a mapping error, named
                with its field) or they carry non-finite or all-zero vectors; the rest were written.
            SearchUnavailable: the cluster is unreachable or busy; retry the batch.
        """
        if not docs:
            return
        for doc in docs:  # a vector field or dimension the index does not have: the whole batch is wrong
            for role, vec in doc.vectors.items():
                if vec is not None:
                    self._check_vector(role, vec)
        target = self._write_target()
        rejected: dict[int, str] = {}
        actions = []
        for doc in docs:
            problem = self._document_problem(doc)
            if problem:
                rejected[int(doc.id)] = problem
            else:
                if doc.identifiers and self._build_index is None and not self.maps_identifiers:
                    doc = replace(doc, identifiers=())  # an index built before the field: until the next reindex
                actions.append(es_queries.index_action(doc, target))
        written, refused = self._bulk_waiting(actions, "write documents") if actions else ([], {})
        rejected.update(refused)
        if self._build_index is not None:
            self._written.update(written)
        if rejected:
            raise DocumentsRejected(rejected, written)

    def _document_problem(self, doc: SearchDocument) -> str | None:
        """Why a document cannot be indexed, found before sending it (None when it can)."""
        for role, vec in doc.vectors.items():
            if vec is None:
                continue
            vec = self._check_vector(role, vec)
            if not np.all(np.isfinite(vec)):
                return f"Vector for field {role!r} has non-finite values (NaN or infinity)."
            if not np.any(vec):
                return f"Vector for field {role!r} is all zeros; cosine similarity needs a non-zero vector."
        if doc.price is not None and not np.isfinite(float(doc.price)):
            return "Price is not a finite number."
        return None

    def delete(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        target = self._write_target()
        deleted, refused = self._bulk_waiting([es_queries.delete_action(int(i), target) for i in ids], "delete documents")
        self._written.difference_update(int(i) for i in ids)
        if refused:
            raise SearchBackendError(f"Elasticsearch refused to delete {len(refused)} document(s): {next(iter(refused.values()))}")

    def _bulk_waiting(self, actions: list[dict], what: str) -> tuple[list[int], dict[int, str]]:
        """:meth:`_bulk`, waiting while the live index is write-blocked for an alias swap.

        During a swap the previous index refuses writes (``cluster_block_exception``); the
        refused documents are resent every ``WRITE_BLOCK_RETRY_S`` for up to
        ``WRITE_BLOCK_WAIT_S``, through the write alias, which by then names the new index. So a
        write racing a reindex waits for it, as with the embedded engine's lock, and is not lost.
        """
        deadline = time.monotonic() + self.write_block_wait_s
        ok: list[int] = []
        refused: dict[int, str] = {}
        while True:
            try:
                written, rejected = self._bulk(actions, what)
                return ok + written, {**refused, **rejected}
            except _WriteBlocked as blocked:
                ok += blocked.written
                refused.update(blocked.refused)
                if self._build_index is not None or time.monotonic() > deadline:
                    raise SearchUnavailable(str(blocked)) from blocked
                actions = [a for a in actions if int(a["_id"]) in blocked.ids]
                time.sleep(WRITE_BLOCK_RETRY_S)

    def _bulk(self, actions: list[dict], what: str) -> tuple[list[int], dict[int, str]]:
        """Send ``actions`` through ``_bulk`` in chunks; (ids written, id -> permanent refusal).

        Documents answered 429 are retried ``BULK_MAX_RETRIES`` times with backoff
        (``helpers.streaming_bulk``); whole requests answered 429/502/503/504 are retried by
        the client. A delete of a missing document counts as done.

        Raises:
            SearchUnavailable: documents still refused for a transient reason (busy cluster,
                writes blocked during an alias swap); the caller retries the batch.
        """
        ok: list[int] = []
        refused: dict[int, str] = {}
        transient: dict[int, str] = {}
        with translated_errors(what):
            for success, item in helpers.streaming_bulk(
                self.client, actions, chunk_size=self.bulk_chunk_size, max_chunk_bytes=BULK_MAX_BYTES,
                raise_on_error=False, raise_on_exception=True, max_retries=self.bulk_max_retries,
                initial_backoff=self.bulk_backoff_s, max_backoff=30.0,
            ):
                op, info = next(iter(item.items()))
                pid = int(info["_id"])
                status = int(info.get("status", 0))
                if success or (op == "delete" and status == 404):
                    ok.append(pid)
                    continue
                reason = describe_item_error(info.get("error"))
                if status in TRANSIENT_ITEM_STATUSES or "cluster_block_exception" in reason:
                    transient[pid] = reason
                elif status in (401, 403):
                    raise SearchBackendError(f"Elasticsearch refused to {what} (HTTP {status}: {reason}); check the credentials.")
                else:
                    refused[pid] = reason
        if transient:
            sample = next(iter(transient.values()))
            message = f"Elasticsearch could not {what} for {len(transient)} of {len(actions)} documents now ({sample})"
            if all("cluster_block_exception" in r for r in transient.values()):
                raise _WriteBlocked(message, set(transient), ok, refused)
            raise SearchUnavailable(message)
        return ok, refused

    def refresh(self) -> None:
        with translated_errors("refresh the index"):
            self.client.indices.refresh(index=self._write_target())


def describe_item_error(error: object) -> str:
    """A bulk item's error as one line naming the field, e.g.
    ``field 'price': document_parsing_exception: failed to parse field [price] ...``."""
    if not isinstance(error, dict):
        return str(error or "rejected")
    reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    caused = error.get("caused_by")
    if isinstance(caused, dict) and caused.get("reason"):
        reason += f" ({caused.get('type')}: {caused['reason']})"
    match = _FIELD_RE.search(reason)
    return f"field {match.group(1)!r}: {reason}" if match else reason
