"""A recorded, in-memory stand-in for an Elasticsearch cluster, plugged in under the official client.

No Elasticsearch server can run on these machines, so these tests replace only the HTTP layer:
:class:`FakeNode` is an ``elastic_transport`` node class (``node_class=``), so the real client,
its serializers, compatibility headers, retries with backoff and the ``helpers.streaming_bulk``
logic all run for real, while :class:`FakeCluster` answers with bodies shaped like the
specification's responses (``_global.bulk.Response``, ``indices.update_aliases.Response``...).
It keeps just enough state (indexes, aliases, document ids, write blocks) to follow an alias
swap; it does not rank unless a test gives it ``search_hits`` (``es_semantics.py`` answers
searches as Elasticsearch documents them). ``_msearch`` answers each search of the request like
a ``_search``. Every request is recorded for the specification checks.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from elastic_transport import ApiResponseMeta, BaseNode, ConnectionError, HttpHeaders
from elastic_transport._node._base import NodeApiResponse


@dataclass
class Request:
    """One request as it went over the wire (body decoded: JSON, or a list of ndjson lines)."""

    method: str
    path: str
    params: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class Fault:
    """A scripted answer: requests matching ``method`` and ``path`` (a regex) get ``status``/``body``."""

    method: str
    path: str
    status: int
    body: dict
    times: int = 1


@dataclass
class FakeCluster:
    """In-memory cluster state and scripted faults; see the module docstring.

    Attributes:
        version: what ``GET /`` reports.
        down: every request fails with a connection error (cluster unreachable).
        item_faults: product id -> bulk item errors ``(status, error)`` answered on successive attempts.
    """

    version: str = "9.1.0"
    down: bool = False
    requests: list[Request] = field(default_factory=list)
    indices: dict[str, dict] = field(default_factory=dict)
    aliases: dict[str, dict[str, dict]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    item_faults: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)
    search_hits: Callable[[str, dict], list[dict]] | None = None

    # -- scripting -------------------------------------------------------------------------------
    def fail(self, method: str, path: str, status: int, body: dict | None = None, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``status``."""
        self.faults.append(Fault(method, path, status, body or error_body(status), times))

    def reject_item(self, product_id: int, status: int, error: dict, times: int = 1) -> None:
        """Answer the bulk item for ``product_id`` with an error ``times`` times."""
        self.item_faults.setdefault(str(product_id), []).extend([(status, error)] * times)

    def sent(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Recorded requests, optionally only those with ``method`` and a ``path`` matching the regex."""
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or re.search(path, r.path))]

    # -- answering -------------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict, body: Any) -> tuple[int, Any]:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and re.search(fault.path, path):
                fault.times -= 1
                return fault.status, fault.body
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if method == "GET" and not parts:
            return 200, info_body(self.version)
        if parts[0] == "_alias":
            return self._get_alias(method, parts[1])
        if parts == ["_aliases"]:
            return self._update_aliases(body["actions"])
        if parts == ["_bulk"]:
            return 200, self._bulk(body)
        target = parts[0]
        if parts[1:] == ["_msearch"]:
            names = self._resolve(target)
            if not names:
                return 404, error_body(404, "index_not_found_exception", f"no such index [{target}]")
            return 200, {"took": 1, "responses": [{**self._search(names, search), "status": 200} for search in body[1::2]]}
        rest = parts[1:]
        if not rest:
            if method == "PUT":
                return self._create(target, body or {})
            if method == "DELETE":
                for name in target.split(","):
                    self.indices.pop(name, None)
                    for members in self.aliases.values():
                        members.pop(name, None)
                return 200, {"acknowledged": True}
        names = self._resolve(target)
        if rest == ["_alias"]:
            return 200, {n: {"aliases": {a: {} for a, m in self.aliases.items() if n in m}} for n in self._match(target)}
        if not names:
            return 404, error_body(404, "index_not_found_exception", f"no such index [{target}]")
        if rest == ["_mapping"] and method == "PUT":  # update mapping: _meta replaced, new properties added
            for n in names:  # a new dict: the recorded create request keeps what it sent
                old = self.indices[n]["mappings"]
                self.indices[n]["mappings"] = {
                    **old, "_meta": (body or {}).get("_meta", old.get("_meta")),
                    "properties": {**(old.get("properties") or {}), **((body or {}).get("properties") or {})},
                }
            return 200, {"acknowledged": True}
        if rest == ["_mapping"]:
            return 200, {n: {"mappings": self.indices[n]["mappings"]} for n in names}
        if rest == ["_settings"]:
            block = ((body or {}).get("index") or {}).get("blocks", {}).get("write")
            for n in names:
                if block is not None:
                    self.indices[n]["blocked"] = bool(block)
            return 200, {"acknowledged": True}
        if rest == ["_refresh"]:
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if rest == ["_count"]:
            return 200, {"count": sum(len(self.indices[n]["docs"]) for n in names), "_shards": {"total": 1, "successful": 1, "failed": 0, "skipped": 0}}
        if rest == ["_search"]:
            return 200, self._search(names, body or {})
        if rest[0] == "_explain":
            return 200, {"_index": names[0], "_id": rest[1], "matched": True, "explanation": {"value": 1.0, "description": "sum of:", "details": []}}
        return 400, error_body(400, "illegal_argument_exception", f"the fake cluster does not serve {method} {path}")

    def _match(self, pattern: str) -> list[str]:
        return sorted(n for n in self.indices if any(fnmatch.fnmatchcase(n, p) for p in pattern.split(",")))

    def _resolve(self, target: str) -> list[str]:
        out = []
        for name in target.split(","):
            if name in self.aliases:
                out += sorted(self.aliases[name])
            elif name in self.indices:
                out.append(name)
            elif "*" in name:
                out += self._match(name)
        return out

    def _write_index(self, target: str) -> str | None:
        if target in self.indices:
            return target
        members = self.aliases.get(target, {})
        writers = [n for n, m in members.items() if m.get("is_write_index")] or (list(members) if len(members) == 1 else [])
        return writers[0] if writers else None

    def _get_alias(self, method: str, name: str) -> tuple[int, Any]:
        members = self.aliases.get(name)
        if not members:
            return 404, {"error": f"alias [{name}] missing", "status": 404}
        return (200, {n: {"aliases": {name: dict(m)}} for n, m in members.items()}) if method == "GET" else (200, "")

    def _create(self, name: str, body: dict) -> tuple[int, Any]:
        if name in self.indices:
            return 400, error_body(400, "resource_already_exists_exception", f"index [{name}/abc] already exists")
        self.indices[name] = {"mappings": body.get("mappings", {}), "settings": body.get("settings", {}), "docs": {}, "blocked": False}
        for alias, options in (body.get("aliases") or {}).items():
            self.aliases.setdefault(alias, {})[name] = dict(options)
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _update_aliases(self, actions: list[dict]) -> tuple[int, Any]:
        staged = {a: dict(m) for a, m in self.aliases.items()}
        for action in actions:
            (op, spec), = action.items()
            if spec["index"] not in self.indices:
                return 404, error_body(404, "index_not_found_exception", f"no such index [{spec['index']}]")
            if op == "add":
                staged.setdefault(spec["alias"], {})[spec["index"]] = {"is_write_index": True} if spec.get("is_write_index") else {}
            elif op == "remove":
                if spec["index"] not in staged.get(spec["alias"], {}):
                    return 404, error_body(404, "aliases_not_found_exception", f"aliases [{spec['alias']}] missing")
                staged[spec["alias"]].pop(spec["index"])
        self.aliases = {a: m for a, m in staged.items() if m}
        return 200, {"acknowledged": True}

    def _bulk(self, lines: list[dict]) -> dict:
        items, errors, i = [], False, 0
        while i < len(lines):
            (op, meta), = lines[i].items()
            source = lines[i + 1] if op in ("index", "create") else None
            i += 2 if source is not None else 1
            index = self._write_index(meta["_index"])
            doc_id = meta["_id"]
            queued = self.item_faults.get(doc_id)
            if queued:
                status, error = queued.pop(0)
            elif index is None:
                status, error = 404, {"type": "index_not_found_exception", "reason": f"no such index [{meta['_index']}]"}
            elif self.indices[index]["blocked"]:
                status, error = 403, {"type": "cluster_block_exception", "reason": f"index [{index}] blocked by: [FORBIDDEN/8/index write (api)];"}
            elif op == "delete":
                status, error = (200, None) if self.indices[index]["docs"].pop(doc_id, None) is not None else (404, None)
            else:
                self.indices[index]["docs"][doc_id] = source
                status, error = 201, None
            item = {"_index": index or meta["_index"], "_id": doc_id, "status": status}
            if error is not None:
                item["error"] = error
                errors = True
            else:
                item.update({"result": "deleted" if op == "delete" and status == 200 else "not_found" if status == 404 else "created",
                             "_version": 1, "_seq_no": 0, "_primary_term": 1, "_shards": {"total": 1, "successful": 1, "failed": 0}})
            items.append({op: item})
        return {"took": 1, "errors": errors, "items": items}

    def _search(self, names: list[str], body: dict) -> dict:
        if self.search_hits is not None:
            hits = self.search_hits(names[0], body)
        else:
            docs = sorted((int(i), n, d) for n in names for i, d in self.indices[n]["docs"].items())
            after = (body.get("search_after") or [None])[0]
            hits = []
            for pid, name, src in docs:
                if after is not None and pid <= after:
                    continue
                hit = {"_index": name, "_id": str(pid), "_score": 1.0, "sort": [pid]}
                if isinstance(body.get("_source"), dict):
                    wanted = body["_source"].get("includes", [])
                    hit["_source"] = {k: v for k, v in src.items() if k in wanted}
                hits.append(hit)
            hits = hits[: body.get("size", 10)]
        out = {"took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
               "hits": {"max_score": 1.0, "hits": hits}}
        if "aggs" in body:
            out["aggregations"] = {name: {"buckets": []} for name in body["aggs"]}
        return out


def info_body(version: str) -> dict:
    """``GET /`` as a cluster of ``version`` answers it (``_global.info.Response``)."""
    return {"name": "node-1", "cluster_name": "fake", "cluster_uuid": "fake-uuid", "tagline": "You Know, for Search",
            "version": {"number": version, "build_flavor": "default", "build_type": "docker", "build_hash": "0", "build_date": "2026-01-01T00:00:00Z",
                        "build_snapshot": False, "lucene_version": "10.0.0", "minimum_wire_compatibility_version": "8.18.0",
                        "minimum_index_compatibility_version": "8.0.0"}}


def error_body(status: int, kind: str = "", reason: str = "") -> dict:
    """An error response (``ErrorResponseBase``)."""
    kind = kind or {429: "es_rejected_execution_exception", 503: "cluster_block_exception"}.get(status, "exception")
    known = {429: "rejected execution of coordinating operation", 503: "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered]"}
    reason = reason or known.get(status, "error")
    return {"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}, "status": status}


class FakeNode(BaseNode):
    """An ``elastic_transport`` node that answers from :attr:`cluster` instead of the network."""

    cluster: FakeCluster

    def perform_request(self, method, target, body=None, headers=None, request_timeout=None) -> NodeApiResponse:
        cluster = self.cluster
        if cluster.down:
            raise ConnectionError("Connection refused (the fake cluster is down)")
        path, _, query = target.partition("?")
        headers = {k.lower(): v for k, v in dict(headers or {}).items()}
        decoded: Any = None
        if body:
            text = body.decode("utf-8")
            decoded = [json.loads(line) for line in text.splitlines() if line.strip()] if "ndjson" in headers.get("content-type", "") else json.loads(text)
        cluster.requests.append(Request(method, path, dict(parse_qsl(query)), decoded, headers))
        status, answer = cluster.handle(method, path, dict(parse_qsl(query)), decoded)
        raw = b"" if method == "HEAD" or answer == "" else json.dumps(answer).encode()
        meta = ApiResponseMeta(
            status=status, http_version="1.1", duration=0.0, node=self.config,
            headers=HttpHeaders({"content-type": "application/json", "x-elastic-product": "Elasticsearch"}),
        )
        return NodeApiResponse(meta, raw)


def node_class(cluster: FakeCluster) -> type[FakeNode]:
    """A :class:`FakeNode` subclass bound to ``cluster`` (the client instantiates node classes itself)."""
    return type("BoundFakeNode", (FakeNode,), {"cluster": cluster})
