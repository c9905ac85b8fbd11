"""Elasticsearch engine (production, scale-out): BM25 and kNN on ``dense_vector`` fields in one cluster.

Index layout (settings and mapping in :mod:`search.backends.elasticsearch.mapping`)::

    products-20261130-235959-123456   one physical index per build
    products        (read alias)  -> the live build; every search goes through it
    products-write  (write alias) -> the live build; every write goes through it

``rebuild()`` creates a new build beside the live one, fills it (refresh off, no replicas),
blocks writes to the live index while ``before_swap`` catches up, restores refresh and
replicas, refreshes, checks the document count, records the build as complete in its mapping
``_meta`` (``build.complete``) and moves both aliases in one ``_aliases`` call (atomic). The
newest ``keep`` previous *complete* builds stay for rollback; older ones are deleted, and so are
incomplete builds older than the live one (left by a rebuild that died, e.g. a killed
``reindex``); incomplete builds newer than the live one may still be filling and are left.

Refresh policy: writes are not refreshed per request (``refresh=false``, the cheapest); the
live index refreshes every second (``es_mapping.LIVE_REFRESH_INTERVAL``), so a worker's writes
reach shoppers within about a second, and :meth:`refresh` forces it (tests, a rebuild's count
check). A hybrid rule that ``search.hybrid`` compiles for the cluster runs through the
``retriever`` API (``rrf``; ``linear`` with ``minmax``) when the cluster's version has it;
otherwise ``search.hybrid`` asks for every retriever's list in one ``_msearch`` and fuses them
itself, so both rank alike. Cluster down or busy raises
:class:`~search.backends.base.SearchUnavailable` (or, with ``FALLBACK`` set, reads are answered
by the embedded engine).

Modules: ``backend`` (the class: cluster, aliases, reading), ``writes`` (``_bulk``), ``builds``
(``rebuild`` and aliases), ``hybrid`` (fusion on the cluster, ``_msearch``), ``client`` (the
official client, version detection, errors), ``mapping`` (index settings and mapping),
``queries`` (request bodies).
"""

from search.backends.elasticsearch.backend import ElasticsearchSearchBackend

SearchBackend = ElasticsearchSearchBackend
