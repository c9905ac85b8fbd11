"""Index builds behind aliases: ``rebuild`` fills a new build beside the live one and swaps both aliases.

A build is recorded as complete (``build.complete`` in its mapping ``_meta``) just before it is
swapped in, and the live build is when a rebuild starts (it was complete when it went live).
Pruning keeps the newest ``keep`` complete previous builds and deletes incomplete builds older
than the live one: a rebuild that died (e.g. a killed ``reindex``) is never kept for rollback.

Part of :class:`~search.backends.elasticsearch.backend.ElasticsearchSearchBackend` (a mixin);
see :mod:`search.backends.elasticsearch` for the layout of builds and aliases.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Self

from search.backends.base import SearchBackendError
from search.backends.elasticsearch import mapping as es_mapping
from search.backends.elasticsearch import queries as es_queries
from search.backends.elasticsearch.client import translated_errors

logger = logging.getLogger(__name__)

#: Previous builds kept for rollback after a swap.
KEEP_BUILDS = 1


class Builds:
    """``reset_index``, ``rebuild`` and the bookkeeping of builds of the Elasticsearch backend."""

    def _new_index_name(self) -> str:
        return f"{self.name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}"

    def _is_build(self, index: str) -> bool:
        return re.fullmatch(re.escape(self.name) + r"-\d{8}-\d{6}-\d{6}", index) is not None

    def reset_index(self) -> None:
        """Swap in a new empty build (the previous one is kept like any other)."""
        with self.rebuild():
            pass

    @contextlib.contextmanager
    def rebuild(self, *, before_swap=None, keep: int | None = None, vector_dims=None, space=None) -> Iterator[Self]:
        self._ensure()
        if space is None and vector_dims is None:  # same vectors as the live build: keep its record
            space = self._space  # read with the mapping by _ensure()
        new_index = self._new_index_name()
        dims = dict(vector_dims or self.vector_dims)
        body = es_mapping.index_body(dims, self.options, building=True)
        if space is not None:
            body["mappings"]["_meta"] = {"fusion_space": space}
        with translated_errors(f"create the index {new_index}"):
            self.client.indices.create(index=new_index, **body)
        builder = type(self)(self.params, dims, client=self.client, build_index=new_index)
        builder._features = self._features
        builder._space = space
        blocked: list[str] = []
        try:
            self._mark_complete(self._alias_targets(self.read_alias))  # live, so complete when it went live
            yield builder
            old_read = self._alias_targets(self.read_alias)
            old_write = self._alias_targets(self.write_alias)
            with translated_errors("block writes to the live index"):
                for index in old_write:  # writes racing the swap fail as transient and are retried
                    self.client.indices.put_settings(index=index, settings=es_mapping.write_block(True))
                    blocked.append(index)
            if before_swap is not None:
                before_swap(builder)
            with translated_errors(f"finish the index {new_index}"):
                self.client.indices.put_settings(index=new_index, settings=es_mapping.live_settings(self.options))
                self.client.indices.refresh(index=new_index)
                held = int(self.client.count(index=new_index)["count"])
            if held != len(builder._written):
                raise SearchBackendError(
                    f"The new index {new_index} holds {held} documents but {len(builder._written)} were written to it; "
                    "the live index was kept."
                )
            self._mark_complete([new_index], documents=held)
            actions = es_queries.swap_actions(
                read_alias=self.read_alias, write_alias=self.write_alias, new_index=new_index, old_read=old_read, old_write=old_write
            )
            with translated_errors("swap the index aliases"):
                self.client.indices.update_aliases(actions=actions)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.indices.delete(index=new_index)
            raise
        finally:
            for index in blocked:  # the previous build stays writable, ready for a rollback
                with contextlib.suppress(Exception):
                    self.client.indices.put_settings(index=index, settings=es_mapping.write_block(False))
        logger.info("Swapped %s and %s to %s (%d documents)", self.read_alias, self.write_alias, new_index, held)
        self.vector_dims, self._space, self._space_targets = dims, space, [new_index]
        self._prune(self.keep_builds if keep is None else keep)

    def builds(self) -> list[str]:
        """Every build of this index name, oldest first."""
        with translated_errors("list the index builds"):
            found = self.client.indices.get_alias(index=f"{self.name}-*").body
        return sorted(i for i in found if self._is_build(i))

    def _build_meta(self, indexes: Sequence[str]) -> dict[str, dict]:
        """Index -> its mapping's ``_meta`` (``{}`` when it has none)."""
        if not indexes:
            return {}
        with translated_errors("read the builds' mappings"):
            found = self.client.indices.get_mapping(index=",".join(indexes)).body
        return {index: (entry.get("mappings") or {}).get("_meta") or {} for index, entry in found.items()}

    def _mark_complete(self, indexes: Sequence[str], *, documents: int | None = None) -> None:
        """Record ``build.complete`` in these builds' mapping ``_meta`` (kept: its fusion space)."""
        for index, meta in self._build_meta(indexes).items():
            if (meta.get("build") or {}).get("complete"):
                continue
            meta = {**meta, "build": {"complete": True, "documents": documents, "completed_at": datetime.now(UTC).isoformat()}}
            with translated_errors(f"mark the index {index} complete"):
                self.client.indices.put_mapping(index=index, meta=meta)

    def _prune(self, keep: int) -> list[str]:
        """Keep the newest ``keep`` complete previous builds; delete older complete ones and
        incomplete ones older than the live build (a rebuild that died). Returns the deleted names."""
        live = set(self._alias_targets(self.read_alias)) | set(self._alias_targets(self.write_alias))
        previous = [i for i in self.builds() if i not in live]
        meta = self._build_meta(previous)
        complete = [i for i in previous if (meta.get(i, {}).get("build") or {}).get("complete")]
        doomed = complete[: max(0, len(complete) - max(0, keep))]
        newest_live = max(live, default="")
        doomed += [i for i in previous if i not in complete and i < newest_live]  # newer ones may still be filling
        if doomed:
            with translated_errors("delete old index builds"):
                self.client.indices.delete(index=",".join(doomed))
        return doomed
