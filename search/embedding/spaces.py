"""Which fusion space is in service: the trained head named by ``active.json``, or the bridge.

Two spaces matter at any moment:

* the **active** space: ``<FUSION_HEAD_DIR>/active.json`` names a trained head (written by
  ``manage.py train_fusion``); without one, or when it cannot be loaded, the zero-shot bridge.
  New index builds (``manage.py reindex``) embed products in it.
* the **live index's** space: every index build records the space its fused vectors were made
  in. Queries and incremental writes to that index must use the same space, so after a new
  head is activated, search keeps using the previous head until ``reindex`` swaps in a build
  made with the new one (:func:`space_for_index`).

Loaded spaces are cached per process and per version; the pointer file is re-read when its
modification time changes (one ``stat()`` per call).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from mlmodels.fusion import FusionSpace, bridge_version
from mlmodels.head_artefacts import ArtefactError, load_artefact, read_active, verify_artefact
from search.embedding.encoders import bridge, encoder_names, text_spec
from search.models import ProductEmbedding

logger = logging.getLogger(__name__)

#: Trained heads kept loaded per process (the live index's and the active one, plus spares).
MAX_LOADED = 4
#: A head that failed to load is tried again after this many seconds (not on every query).
RETRY_FAILED_S = 30.0


@dataclass(frozen=True)
class SpaceRef:
    """A fusion space named without loading it: ``name`` ("bridge" / "fusion"), ``version``, ``dim``."""

    name: str
    version: str
    dim: int

    def as_dict(self) -> dict:
        return asdict(self)


def bridge_ref() -> SpaceRef:
    """The zero-shot bridge over ``TEXT_ENCODER``: it lives in that encoder's space (MiniLM: 384-d)."""
    spec = text_spec()
    return SpaceRef("bridge", bridge_version(spec.name), spec.dim)


def head_dir() -> Path:
    return Path(settings.FUSION_HEAD_DIR)


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pointer_key: tuple | None = None
        self.active: SpaceRef | None = None  # set by active_ref() (not at import: the settings may name a bad encoder)
        self.active_config: dict | None = None
        self.spaces: dict[str, FusionSpace] = {}
        self.problems: dict[str, str] = {}  # version (or "active") -> why it is not used
        self.failed_at: dict[str, float] = {}  # version -> monotonic time of the last failed load

    def clear(self) -> None:
        with self.lock:
            self.pointer_key, self.active, self.active_config = None, None, None
            self.spaces.clear()
            self.problems.clear()
            self.failed_at.clear()


_cache = _Cache()


def reset() -> None:
    """Forget loaded heads and the cached pointer (tests, after artefacts were changed in place)."""
    _cache.clear()


def _problem(key: str, reason: str) -> None:
    if _cache.problems.get(key) != reason:
        logger.warning("Fusion head not used, search falls back to the zero-shot bridge: %s", reason)
    _cache.problems[key] = reason


def active_ref() -> SpaceRef:
    """The active space, from ``active.json`` and the artefact's ``head.json`` (weights checksummed, not loaded).

    Falls back to the bridge (with a logged warning and a note for :func:`space_status`) when
    the pointer or the artefact config is unusable.
    """
    file = head_dir() / "active.json"
    try:
        st = file.stat()
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
    except FileNotFoundError:
        key = None
    with _cache.lock:
        if key == _cache.pointer_key and _cache.pointer_key is not None:
            return _cache.active
        _cache.pointer_key, _cache.active, _cache.active_config = key, bridge_ref(), None
        _cache.problems.pop("active", None)
        if key is None:
            return _cache.active
        try:
            pointer = read_active(head_dir())
            if pointer is not None:
                config = verify_artefact(head_dir() / pointer.version, encoders=encoder_names())
                _cache.active = SpaceRef("fusion", config["version"], int(config["dim"]))
                _cache.active_config = config
        except ArtefactError as exc:
            _problem("active", exc.reason)
        return _cache.active


def get_space(version: str | None = None) -> FusionSpace:
    """A loaded fusion space: the active one (``version=None``) or the one named ``version``.

    A trained head that cannot be loaded (missing, corrupt, wrong dims) is replaced by the
    zero-shot bridge, with a logged warning and a note in :func:`space_status`; callers that
    need a specific dimension check ``space.dim``.
    """
    if version is None:
        version = active_ref().version
    if version.startswith("bridge"):
        return bridge()
    with _cache.lock:
        space = _cache.spaces.get(version)
        if space is not None:
            return space
        if time.monotonic() - _cache.failed_at.get(version, -RETRY_FAILED_S) < RETRY_FAILED_S:
            return bridge()
        try:
            space = load_artefact(head_dir() / version, encoders=encoder_names())
        except ArtefactError as exc:
            _cache.failed_at[version] = time.monotonic()
            _problem(version, exc.reason)
            if _cache.active is not None and version == _cache.active.version:  # the pointer stays cached: no retry until it changes
                _problem("active", exc.reason)
                _cache.active, _cache.active_config = bridge_ref(), None
            return bridge()
        while len(_cache.spaces) >= MAX_LOADED:
            _cache.spaces.pop(next(iter(_cache.spaces)))
        _cache.spaces[version] = space
        _cache.problems.pop(version, None)
        _cache.failed_at.pop(version, None)
        return space


def index_ref(backend) -> SpaceRef | None:
    """The space recorded with ``backend``'s live index, or ``None`` when the index has no record."""
    recorded = backend.index_space()
    if not recorded:
        return None
    return SpaceRef(recorded.get("name", "fusion"), recorded["version"], int(recorded["dim"]))


def served_ref(backend) -> SpaceRef | None:
    """The space whose fused vectors match ``backend``'s live index, named without loading it.

    The version recorded with the index wins. An index without a record (built before versions
    were recorded, or by a backend that cannot record one) gets the active space if its
    dimension fits the index's fused field, else the bridge if that fits, else ``None``.
    """
    ref = index_ref(backend)
    if ref is not None:
        return ref
    dim = backend.vector_dims.get("fused")
    for candidate in (active_ref(), bridge_ref()):
        if candidate.dim == dim:
            return candidate
    return None


def space_for_index(backend) -> FusionSpace | None:
    """The loaded space for queries and writes to ``backend``'s live index (see :func:`served_ref`).

    Returns ``None`` when no loadable space fits the index's fused field (e.g. its head's
    artefact was deleted): callers then skip the fused vector, and BM25 and the text and image
    kNN keep working. ``manage.py reindex`` fixes it.
    """
    ref = served_ref(backend)
    space = get_space(ref.version) if ref is not None else None
    dim = backend.vector_dims.get("fused")
    if space is None or space.dim != dim:
        _problem(f"index:{ref.version if ref else 'unrecorded'}",
                 f"no loadable fusion space matches the live index's {dim}-d fused vectors; run `manage.py reindex`")
        return None
    return space


def space_status(backend=None) -> dict:
    """What ``search_status`` prints about fusion: name, dim, version, metrics and a note.

    Reads JSON only (no model is loaded). ``note`` reads "trained fusion head <version> (...)"
    or "cold start: zero-shot bridge (<reason>)"; ``problems`` lists heads that could not be used.
    """
    ref = active_ref()
    info: dict = {"name": ref.name, "dim": ref.dim, "version": ref.version, "metrics": {}, "problems": dict(_cache.problems)}
    if ref.name == "fusion":
        config = _cache.active_config or {}
        info["metrics"] = config.get("metrics") or {}
        info["note"] = f"trained fusion head {ref.version} ({describe_metrics(info['metrics'])}; trained {config.get('created_at', '?')})"
    else:
        info["note"] = f"cold start: zero-shot bridge ({cold_start_reason()})"
    if backend is not None:
        try:
            live = served_ref(backend)
        except Exception as exc:  # noqa: BLE001 (the engine may be down; search_status reports that separately)
            info["index_note"] = f"the live index's fusion space is unknown ({exc})"
            return info
        info["index_version"] = live.version if live else None
        if live is None:
            info["index_note"] = ("no fusion space matches the live index's fused vectors, so search skips them: "
                                  "run `manage.py reindex`")
        elif live.version != ref.version:
            info["index_note"] = (f"the live index was built with {live.version}; search uses it until "
                                  f"`manage.py reindex` swaps in a build with {ref.version}")
    return info


def describe_metrics(metrics: dict) -> str:
    """``"held-out text->photo nDCG@10 0.52 vs bridge 0.04, recall@10 0.83 vs 0.10 on 1535 products"``."""
    held = metrics.get("held_out") or {}
    head, bridge = held.get("fusion") or {}, held.get("bridge") or {}
    if not head:
        return "no held-out metrics recorded"
    parts = [f"held-out text->photo nDCG@10 {head.get('ndcg@10', 0):.2f} vs bridge {bridge.get('ndcg@10', 0):.2f}",
             f"recall@10 {head.get('recall@10', 0):.2f} vs {bridge.get('recall@10', 0):.2f}"]
    if held.get("n_products"):
        parts.append(f"on {held['n_products']} products")
    return ", ".join(parts[:2]) + (f" {parts[2]}" if len(parts) > 2 else "")


def cold_start_reason() -> str:
    """Why no trained head is in service, for ``search_status``."""
    if "active" in _cache.problems:
        return f"the active head cannot be used: {_cache.problems['active']}"
    n = ProductEmbedding.objects.filter(image_features__isnull=False).count()
    need = settings.FUSION_MIN_PRODUCTS
    if n < need:
        return f"catalog too small to train: {n} products with photos, need >= {need}"
    return f"no head trained yet; {n} products with photos are enough: run `manage.py train_fusion`"
