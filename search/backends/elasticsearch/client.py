"""The official ``elasticsearch`` client, set up for this backend: version detection, the
compatibility headers an 8.x cluster accepts, retries with backoff, and error translation.

The 9.x client asks for ``compatible-with=9`` responses, which an 8.x cluster refuses
(``media_type_header_exception``). :class:`CompatTransport` asks the cluster its version once
with a plain ``application/json`` request (accepted by every version) and from then on sends
``compatible-with=<cluster major>`` when the cluster is older than the client.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from elastic_transport import ApiError, Transport, TransportError
from elasticsearch import Elasticsearch
from elasticsearch._version import __versionstr__ as CLIENT_VERSION

from search.backends.base import SearchBackendError, SearchUnavailable

CLIENT_MAJOR = int(CLIENT_VERSION.split(".")[0])
#: Oldest cluster this backend supports: kNN with filters, int8_hnsw and the 8.x REST API.
MIN_VERSION = (8, 12, 0)
#: HTTP statuses worth retrying (the cluster is busy or a node is restarting).
RETRY_STATUSES = (429, 502, 503, 504)
_COMPAT_RE = re.compile(r"compatible-with=\d+")


class CompatTransport(Transport):
    """A :class:`elastic_transport.Transport` that rewrites ``compatible-with=N`` to the cluster's major."""

    compat_major: int | None = None

    def perform_request(self, method, target, *, headers=None, **kwargs):  # noqa: D102 (same as Transport)
        if self.compat_major is not None and self.compat_major != CLIENT_MAJOR and headers:
            headers = {k: _COMPAT_RE.sub(f"compatible-with={self.compat_major}", v) if isinstance(v, str) else v for k, v in dict(headers).items()}
        if headers is None:
            return super().perform_request(method, target, **kwargs)
        return super().perform_request(method, target, headers=headers, **kwargs)


@dataclass(frozen=True)
class ClusterFeatures:
    """What the connected cluster can do, from its version (Elastic release notes / API specification).

    Attributes:
        version: (major, minor, patch).
        rrf_retriever: ``retriever.rrf`` is generally available (8.16; technical preview from 8.14).
        rrf_weights: weighted ``rrf`` entries ``{"retriever": ..., "weight": w}`` (9.2).
        linear_retriever: ``retriever.linear`` with ``minmax`` normalisation (8.18 and 9.0).
        source_exclude_vectors: ``_source.exclude_vectors`` exists, and new indexes leave vectors
            out of ``_source`` unless asked (9.2).
    """

    version: tuple[int, int, int]
    rrf_retriever: bool
    rrf_weights: bool
    linear_retriever: bool
    source_exclude_vectors: bool

    @classmethod
    def for_version(cls, version: tuple[int, int, int]) -> ClusterFeatures:
        return cls(
            version=version,
            rrf_retriever=version >= (8, 16, 0),
            rrf_weights=version >= (9, 2, 0),
            linear_retriever=version >= (8, 18, 0),
            source_exclude_vectors=version >= (9, 2, 0),
        )


def parse_version(number: str) -> tuple[int, int, int]:
    """``"8.15.3"`` / ``"9.1.0-SNAPSHOT"`` -> ``(8, 15, 3)``.

    Raises:
        SearchBackendError: not a version number.
    """
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", number or "")
    if not match:
        raise SearchBackendError(f"Elasticsearch reported an unreadable version {number!r}")
    return tuple(int(x) for x in match.groups())  # type: ignore[return-value]


def make_client(params: dict) -> Elasticsearch:
    """The client for a ``SEARCH_BACKENDS`` entry.

    Params used: ``URLS`` (list of node URLs), ``TIMEOUT_S`` (per request, default 10),
    ``MAX_RETRIES`` (default 3; on connection errors, timeouts and 429/502/503/504, with
    jittered exponential backoff from ``RETRY_BACKOFF_S`` = 0.5 s up to 10 s), and
    ``CLIENT_OPTIONS`` (extra keyword arguments for :class:`elasticsearch.Elasticsearch`, e.g.
    ``api_key``, ``basic_auth``, ``ca_certs``).

    Raises:
        SearchBackendError: no URL configured.
    """
    urls = [u for u in (params.get("URLS") or []) if u]
    if not urls:
        raise SearchBackendError("The Elasticsearch backend needs URLS (set ELASTICSEARCH_URL, e.g. http://localhost:9200).")
    options = {
        "request_timeout": float(params.get("TIMEOUT_S", 10)),
        "max_retries": int(params.get("MAX_RETRIES", 3)),
        "retry_on_status": RETRY_STATUSES,
        "retry_on_timeout": True,
        "retry_backoff_base": float(params.get("RETRY_BACKOFF_S", 0.5)),
        "retry_backoff_cap": 10.0,
        "transport_class": CompatTransport,
        **(params.get("CLIENT_OPTIONS") or {}),
    }
    return Elasticsearch(urls, **options)


def detect_version(client: Elasticsearch) -> tuple[int, int, int]:
    """Ask the cluster its version (``GET /`` with plain JSON headers) and set the compatibility header.

    Raises:
        SearchUnavailable: the cluster does not answer.
        SearchBackendError: it answers with an error, is not Elasticsearch, or is older than 8.12.
    """
    try:
        meta, body = client.transport.perform_request("GET", "/", headers={"accept": "application/json"})
    except TransportError as exc:
        raise SearchUnavailable(f"Elasticsearch did not answer: {exc}") from exc
    if meta.status in RETRY_STATUSES:
        raise SearchUnavailable(f"Elasticsearch is busy or starting (HTTP {meta.status})")
    if meta.status != 200 or not isinstance(body, dict) or "version" not in body:
        raise SearchBackendError(f"Elasticsearch answered GET / with HTTP {meta.status}: {str(body)[:300]}")
    version = parse_version(str(body["version"].get("number", "")))
    if version < MIN_VERSION:
        raise SearchBackendError(
            f"Elasticsearch {'.'.join(map(str, version))} is older than {'.'.join(map(str, MIN_VERSION))}, the oldest this backend supports."
        )
    if isinstance(client.transport, CompatTransport):
        client.transport.compat_major = min(version[0], CLIENT_MAJOR)
    return version


def api_status(exc: ApiError) -> int:
    """The HTTP status of an API error."""
    return int(getattr(exc, "status_code", None) or exc.meta.status)


def error_reason(exc: ApiError) -> str:
    """The most useful line of an Elasticsearch error: root cause type and reason."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        cause = causes[0] if isinstance(causes[0], dict) else error
        reason = f"{cause.get('type', error.get('type', 'error'))}: {cause.get('reason', error.get('reason', ''))}"
        caused_by = error.get("caused_by")
        if isinstance(caused_by, dict) and caused_by.get("reason") and caused_by.get("reason") not in reason:
            reason += f" ({caused_by.get('type')}: {caused_by['reason']})"
        return reason
    return str(error or exc.message or exc)


@contextlib.contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Turn client errors into the backend's: transient ones into :class:`SearchUnavailable`.

    Args:
        action: what was being done, for the message ("search", "write documents", ...).
    """
    try:
        yield
    except ApiError as exc:
        reason = error_reason(exc)
        status = api_status(exc)
        if status in RETRY_STATUSES or "cluster_block_exception" in reason:
            raise SearchUnavailable(f"Elasticsearch could not {action} right now (HTTP {status}, {reason})") from exc
        if status in (401, 403):
            raise SearchBackendError(
                f"Elasticsearch refused to {action} (HTTP {status}, {reason}); check the credentials in ELASTICSEARCH_URL / CLIENT_OPTIONS."
            ) from exc
        raise SearchBackendError(f"Elasticsearch refused to {action} (HTTP {status}, {reason})") from exc
    except TransportError as exc:
        raise SearchUnavailable(f"Elasticsearch did not answer while trying to {action}: {exc}") from exc
