"""A validator for Elasticsearch request bodies against Elastic's published API specification.

Reads the compiled ``schema.json`` of the elastic/elasticsearch-specification project
(``../shared/es-spec/schema.json.gz``): ``endpoints[]`` name each endpoint's request type and
URL templates, ``types[]`` describe every type. :meth:`Spec.validate` walks a body against
its endpoint's request type recursively:

* ``interface``: known properties only (property ``aliases`` accepted; inherited ones through
  ``inherits``), required ones present; ``AdditionalProperty`` / ``AdditionalProperties``
  behaviours allow field-named keys; ``shortcutProperty`` allows the short form
  (``{"match": {"title": "towel"}}``); ``variants: container`` (``QueryContainer``,
  ``RetrieverContainer``, ``AggregationContainer``...) takes exactly one variant key besides
  its container properties;
* ``type_alias``: its aliased type; ``internal_tag`` unions (mapping ``Property``, analyzers,
  token filters) pick the variant from the tag (``"type": "dense_vector"``);
* ``enum``: member names or aliases; ``union_of``: any item; ``array_of``; ``dictionary_of``
  (``singleKey`` means exactly one key); ``literal_value``; ``user_defined_value`` (anything);
  builtins ``string``, ``boolean``, ``number``, ``null``.

Unknown or misplaced keys fail with the JSON path, e.g. ``$.knn.num_candidate: unknown key``.
Query-string parameters are checked against the request's ``path`` and ``query`` lists.
"""

from __future__ import annotations

import gzip
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "es-spec" / "schema.json.gz"
#: Query parameters every endpoint takes (the ``CommonQueryParameters`` behaviour).
COMMON_QUERY_PARAMS = {"error_trace", "filter_path", "human", "pretty"}
_BULK_OPS_WITH_SOURCE = {"index", "create"}

TypeRef = tuple[str, str]


class SpecViolation(AssertionError):
    """A request does not match the specification; ``errors`` lists every problem with its path."""

    def __init__(self, endpoint: str, errors: list[str]):
        self.endpoint = endpoint
        self.errors = errors
        super().__init__(f"{endpoint}: " + "; ".join(errors[:20]))


def spec_path() -> Path:
    """Where the specification lives (``settings.CATALOG_DIR``'s sibling ``es-spec``, else next to the repo)."""
    try:
        from django.conf import settings

        candidate = Path(settings.CATALOG_DIR).parent / "es-spec" / "schema.json.gz"
        if candidate.is_file():
            return candidate
    except Exception:  # noqa: BLE001 (settings not configured: fall back to the repo layout)
        pass
    return SPEC_PATH


class Spec:
    """The specification, loaded once, with request validation.

    Args:
        path: the ``schema.json.gz`` file.
    """

    def __init__(self, path: Path | None = None):
        with gzip.open(path or spec_path(), "rt", encoding="utf-8") as fh:
            raw = json.load(fh)
        self.types: dict[TypeRef, dict] = {(t["name"]["namespace"], t["name"]["name"]): t for t in raw["types"]}
        self.endpoints: dict[str, dict] = {e["name"]: e for e in raw["endpoints"]}

    # -- endpoints -------------------------------------------------------------------------------
    @cached_property
    def _routes(self) -> list[tuple[re.Pattern, set[str], str, int]]:
        routes = []
        for name, ep in self.endpoints.items():
            for url in ep.get("urls", []):
                pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(url["path"]))
                literal = len(re.sub(r"\{[^}]+\}", "", url["path"]))
                routes.append((re.compile(f"^{pattern}$"), set(url["methods"]), name, literal))
        return routes

    def endpoint_for(self, method: str, path: str) -> str:
        """The endpoint name (``search``, ``indices.create``...) serving ``method path``.

        Raises:
            SpecViolation: no endpoint has that URL and method.
        """
        path = path.split("?", 1)[0]
        matches = [(lit, name) for rx, methods, name, lit in self._routes if method in methods and rx.match(path)]
        if not matches:
            raise SpecViolation(f"{method} {path}", ["no endpoint of the specification has this URL and method"])
        return max(matches)[1]

    # -- requests --------------------------------------------------------------------------------
    def validate(self, endpoint: str, body: Any = None, params: dict | None = None) -> None:
        """Check a request to ``endpoint``.

        Args:
            endpoint: e.g. ``"search"``; see :meth:`endpoint_for`.
            body: the decoded JSON body (for ``bulk``: the list of ndjson lines).
            params: query-string parameters.

        Raises:
            SpecViolation: every problem found, each with its JSON path.
        """
        errors = self.errors(endpoint, body, params)
        if errors:
            raise SpecViolation(endpoint, errors)

    def errors(self, endpoint: str, body: Any = None, params: dict | None = None) -> list[str]:
        """Problems of a request to ``endpoint`` (empty when it is valid)."""
        if endpoint not in self.endpoints:
            return [f"unknown endpoint {endpoint!r}"]
        request = self.types[_ref(self.endpoints[endpoint]["request"])]
        errors: list[str] = []
        allowed = COMMON_QUERY_PARAMS | {p["name"] for p in request.get("query", [])} | {p["name"] for p in request.get("path", [])}
        errors += [f"?{name}: unknown query parameter" for name in (params or {}) if name not in allowed]
        spec_body = request.get("body", {"kind": "no_body"})
        if endpoint == "bulk":
            return errors + self._bulk(body)
        if endpoint == "msearch":
            return errors + self._msearch(body)
        if body is None:
            missing = self.endpoints[endpoint].get("requestBodyRequired")
            return errors + (["$: this endpoint needs a body"] if missing else [])
        if spec_body["kind"] == "no_body":
            return errors + ["$: this endpoint takes no body"]
        if spec_body["kind"] == "value":
            return errors + self._value(body, spec_body["value"], "$", {})
        return errors + self._object(body, spec_body["properties"], "$", {}, None)

    def _bulk(self, lines: Any) -> list[str]:
        """``_bulk``: action lines are ``OperationContainer``; each index/create is followed by a document."""
        if not isinstance(lines, list) or not lines:
            return ["$: a bulk body is a non-empty list of ndjson lines"]
        errors: list[str] = []
        i = 0
        container = {"kind": "instance_of", "type": {"namespace": "_global.bulk", "name": "OperationContainer"}}
        while i < len(lines):
            action = lines[i]
            errors += self._value(action, container, f"$[{i}]", {})
            op = next(iter(action), None) if isinstance(action, dict) else None
            if op in _BULK_OPS_WITH_SOURCE or op == "update":
                if i + 1 >= len(lines) or not isinstance(lines[i + 1], dict):
                    errors.append(f"$[{i + 1}]: {op} needs a document line")
                i += 2
            else:
                i += 1
        return errors

    def _msearch(self, lines: Any) -> list[str]:
        """``_msearch``: ndjson pairs, a ``MultisearchHeader`` then a ``SearchRequestBody`` (each checked as its own type)."""
        if not isinstance(lines, list) or not lines or len(lines) % 2:
            return ["$: a multi-search body is a non-empty list of (header, body) ndjson line pairs"]
        header = {"kind": "instance_of", "type": {"namespace": "_global.msearch", "name": "MultisearchHeader"}}
        search = {"kind": "instance_of", "type": {"namespace": "_global.search._types", "name": "SearchRequestBody"}}
        errors: list[str] = []
        for i in range(0, len(lines), 2):
            errors += self._value(lines[i], header, f"$[{i}]", {})
            errors += self._value(lines[i + 1], search, f"$[{i + 1}]", {})
        return errors

    # -- values ----------------------------------------------------------------------------------
    def _value(self, value: Any, desc: dict, path: str, generics: dict) -> list[str]:
        kind = desc["kind"]
        if kind == "instance_of":
            ref = _ref(desc["type"])
            if ref in generics:
                return self._value(value, generics[ref], path, {})
            args = desc.get("generics", [])
            return self._type(value, ref, [_bind(a, generics) for a in args], path)
        if kind == "array_of":
            if not isinstance(value, list):
                return [f"{path}: expected an array, got {_kind(value)}"]
            out: list[str] = []
            for i, item in enumerate(value):
                out += self._value(item, desc["value"], f"{path}[{i}]", generics)
            return out
        if kind == "union_of":
            return self._union(value, desc["items"], path, generics)
        if kind == "dictionary_of":
            if not isinstance(value, dict):
                return [f"{path}: expected an object, got {_kind(value)}"]
            if desc.get("singleKey") and len(value) != 1:
                return [f"{path}: expected exactly one key, got {len(value)} ({', '.join(map(str, value))})"]
            out = []
            for key, item in value.items():
                out += self._value(item, desc["value"], f"{path}.{key}", generics)
            return out
        if kind == "literal_value":
            return [] if value == desc["value"] else [f"{path}: expected {desc['value']!r}, got {value!r}"]
        if kind == "user_defined_value":
            return []
        return [f"{path}: unsupported type kind {kind!r} in the specification"]

    def _union(self, value: Any, items: list[dict], path: str, generics: dict) -> list[str]:
        attempts = []
        for item in items:
            errs = self._value(value, item, path, generics)
            if not errs:
                return []
            attempts.append(errs)
        # Report the variant that got furthest (deepest error path), then the one with fewest errors.
        return min(attempts, key=lambda errs: (-max(e.split(":", 1)[0].count(".") + e.count("[") for e in errs), len(errs)))

    def _type(self, value: Any, ref: TypeRef, args: list[dict], path: str) -> list[str]:
        if ref[0] == "_builtins":
            return _builtin(value, ref[1], path)
        spec_type = self.types.get(ref)
        if spec_type is None:
            return [f"{path}: type {ref[0]}.{ref[1]} is missing from the specification"]
        generics = dict(zip((_ref(g) for g in spec_type.get("generics", [])), args, strict=False))
        kind = spec_type["kind"]
        if kind == "enum":
            return self._enum(value, spec_type, path)
        if kind == "type_alias":
            variants = spec_type.get("variants") or {}
            if variants.get("kind") == "internal_tag" and isinstance(value, dict):
                return self._tagged(value, spec_type, variants, path, generics)
            return self._value(value, spec_type["type"], path, generics)
        if kind == "interface":
            shortcut = spec_type.get("shortcutProperty")
            if not isinstance(value, dict) and shortcut:
                prop = next((p for p in self._properties(ref) if p["name"] == shortcut), None)
                if prop is not None:
                    return self._value(value, prop["type"], path, self._generics_of(ref, generics))
            return self._object(value, self._properties(ref), path, self._generics_of(ref, generics), spec_type)
        return [f"{path}: cannot validate a {kind} type ({ref[1]})"]

    def _enum(self, value: Any, spec_type: dict, path: str) -> list[str]:
        names = set()
        for m in spec_type["members"]:
            names.add(m["name"])
            names.update(m.get("aliases", []))
        if isinstance(value, bool):
            value = str(value).lower()
        if isinstance(value, str) and (value in names or spec_type.get("isOpen")):
            return []
        return [f"{path}: {value!r} is not one of {', '.join(sorted(names))}"]

    def _tagged(self, value: dict, spec_type: dict, variants: dict, path: str, generics: dict) -> list[str]:
        tag = variants["tag"]
        wanted = value.get(tag, variants.get("defaultTag"))
        for item in spec_type["type"]["items"]:
            ref = _ref(item["type"])
            literal = next((p["type"].get("value") for p in self._properties(ref) if p["name"] == tag and p["type"]["kind"] == "literal_value"), None)
            if literal == wanted:
                return self._value(value, item, path, generics)
        return [f"{path}.{tag}: unknown {spec_type['name']['name']} variant {wanted!r}"]

    def _properties(self, ref: TypeRef) -> list[dict]:
        """Own and inherited properties of an interface."""
        spec_type = self.types[ref]
        props = list(spec_type.get("properties", []))
        parent = spec_type.get("inherits")
        if parent:
            props += self._properties(_ref(parent["type"]))
        return props

    def _generics_of(self, ref: TypeRef, generics: dict) -> dict:
        spec_type = self.types[ref]
        parent = spec_type.get("inherits")
        if parent and parent.get("generics"):
            parent_type = self.types[_ref(parent["type"])]
            names = [_ref(g) for g in parent_type.get("generics", [])]
            generics = {**generics, **dict(zip(names, (_bind(g, generics) for g in parent["generics"]), strict=False))}
        return generics

    def _behaviors(self, spec_type: dict | None) -> list[dict]:
        found = []
        while spec_type is not None:
            found += spec_type.get("behaviors", [])
            parent = spec_type.get("inherits")
            spec_type = self.types.get(_ref(parent["type"])) if parent else None
        return found

    def _object(self, value: Any, props: list[dict], path: str, generics: dict, spec_type: dict | None) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {_kind(value)}"]
        by_name: dict[str, dict] = {}
        for p in props:
            by_name[p["name"]] = p
            for alias in p.get("aliases", []):
                by_name[alias] = p
        extra_key = extra_value = None
        extra_limit = 0
        for behavior in self._behaviors(spec_type):
            name = behavior["type"]["name"]
            if name in ("AdditionalProperty", "AdditionalProperties"):
                extra_key, extra_value = (_bind(g, generics) for g in behavior["generics"])
                extra_limit = 1 if name == "AdditionalProperty" else 10**9
        errors: list[str] = []
        extras = []
        seen = set()
        for key, item in value.items():
            prop = by_name.get(key)
            if prop is None:
                if extra_value is not None and len(extras) < extra_limit:
                    extras.append(key)
                    errors += self._value(item, extra_value, f"{path}.{key}", generics)
                    continue
                valid = sorted(p["name"] for p in props)
                errors.append(f"{path}.{key}: unknown key (valid here: {', '.join(valid[:40])}{', ...' if len(valid) > 40 else ''})")
                continue
            seen.add(prop["name"])
            errors += self._value(item, prop["type"], f"{path}.{key}", generics)
        variants = (spec_type or {}).get("variants") or {}
        if variants.get("kind") == "container":
            chosen = [k for k in value if k in by_name and not by_name[k].get("containerProperty")] + extras
            if len(chosen) != 1:
                errors.append(f"{path}: a {spec_type['name']['name']} takes exactly one of its variants, got {len(chosen)} ({', '.join(chosen)})")
        else:
            for p in props:
                if p.get("required") and p["name"] not in seen:
                    errors.append(f"{path}.{p['name']}: required key missing")
        return errors


def _ref(name: dict) -> TypeRef:
    return name["namespace"], name["name"]


def _bind(desc: dict, generics: dict) -> dict:
    """``desc`` with generic parameters replaced by their arguments."""
    if desc["kind"] == "instance_of" and _ref(desc["type"]) in generics:
        return generics[_ref(desc["type"])]
    return desc


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _builtin(value: Any, name: str, path: str) -> list[str]:
    ok = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "null": value is None,
        "binary": isinstance(value, str),
        "void": True,
    }.get(name)
    if ok is None:
        return [f"{path}: unknown builtin type {name!r}"]
    return [] if ok else [f"{path}: expected {name}, got {_kind(value)}"]


def check_document(source: dict, mapping: dict, path: str = "$") -> list[str]:
    """A document ``_source`` against our own index mapping (``dynamic: strict``): unknown fields,
    vectors of the wrong length, non-positive ``rank_feature`` values."""
    errors = []
    props = mapping.get("properties", {})
    for key, value in source.items():
        field = props.get(key)
        if field is None:
            errors.append(f"{path}.{key}: not in the mapping (dynamic: strict rejects it)")
        elif field["type"] == "dense_vector" and (not isinstance(value, list) or len(value) != field["dims"]):
            errors.append(f"{path}.{key}: expected {field['dims']} numbers, got {len(value) if isinstance(value, list) else _kind(value)}")
        elif field["type"] == "rank_feature" and not (isinstance(value, (int, float)) and value > 0):
            errors.append(f"{path}.{key}: rank_feature values must be positive numbers")
    return errors
