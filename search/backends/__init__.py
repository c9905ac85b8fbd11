"""Backend registry: ``get_backend("default")`` returns the configured engine (cached per process).

Backends import no app code: what an engine must know about the app (the vector dimensions of
the encoders in service and the fusion space that new indexes record) is handed to it when it
is constructed. :func:`get_backend` reads both from the *index spec* the search app provides at
start-up (:func:`provide_index_spec`, called in ``search.apps``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from search.backends.base import BaseSearchBackend

#: ``() -> (vector_dims, space)``: vector field -> dimension, and the fusion space record
#: (``{"name", "version", "dim"}`` or ``None``) a first index is built with.
IndexSpec = Callable[[], tuple[dict[str, int], dict | None]]

_instances: dict[str, BaseSearchBackend] = {}
_lock = threading.Lock()
_index_spec: IndexSpec | None = None


def provide_index_spec(spec: IndexSpec) -> None:
    """Say where new backends get their vector dimensions and fusion space (the search app does, once)."""
    global _index_spec
    _index_spec = spec


def get_backend(alias: str = "default") -> BaseSearchBackend:
    """The backend configured under ``SEARCH_BACKENDS[alias]``, created once per process.

    Raises:
        ImproperlyConfigured: unknown alias or backend module, or no index spec provided.
    """
    with _lock:
        if alias not in _instances:
            _instances[alias] = load_backend(alias)
        return _instances[alias]


def load_backend(alias: str = "default", *, vector_dims: dict[str, int] | None = None, space: dict | None = None, **overrides) -> BaseSearchBackend:
    """Create a new backend instance for ``alias`` (not cached).

    Args:
        alias: a key of ``SEARCH_BACKENDS``.
        vector_dims: vector field -> dimension; default: the provided index spec's.
        space: the fusion space record a first index is built with; default: the index spec's
            (only when ``vector_dims`` is not given either).
        overrides: update the backend's params.

    Raises:
        ImproperlyConfigured: unknown alias or backend module, or no dimensions to build it with.
    """
    try:
        params = {**settings.SEARCH_BACKENDS[alias], **overrides}
    except KeyError:
        raise ImproperlyConfigured(
            f"No search backend {alias!r}; configured: {', '.join(settings.SEARCH_BACKENDS)}"
        ) from None
    if vector_dims is None:
        if _index_spec is None:
            raise ImproperlyConfigured(
                "No index spec for search backends: add 'search' to INSTALLED_APPS (its AppConfig provides the vector "
                "dimensions), or pass vector_dims to load_backend()."
            )
        vector_dims, space = _index_spec()
    module_path = params["BACKEND"]
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"Search backend module {module_path!r} cannot be imported: {exc}") from exc
    return module.SearchBackend(params, vector_dims, space=space)


def reset_backends() -> None:
    """Forget cached instances (tests, after settings change)."""
    with _lock:
        _instances.clear()
