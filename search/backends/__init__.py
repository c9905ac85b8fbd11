"""Backend registry: ``get_backend("default")`` returns the configured engine (cached per process)."""

from __future__ import annotations

import importlib
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from search.backends.base import BaseSearchBackend

_instances: dict[str, BaseSearchBackend] = {}
_lock = threading.Lock()


def get_backend(alias: str = "default") -> BaseSearchBackend:
    """The backend configured under ``SEARCH_BACKENDS[alias]``, created once per process.

    Raises:
        ImproperlyConfigured: unknown alias or backend module.
    """
    with _lock:
        if alias not in _instances:
            _instances[alias] = load_backend(alias)
        return _instances[alias]


def load_backend(alias: str = "default", **overrides) -> BaseSearchBackend:
    """Create a new backend instance for ``alias`` (not cached); ``overrides`` update its params."""
    # App code, imported late: at module level it would load the encoders' packages (torch) whenever
    # search.backends.base is imported. Goes when backends receive their dimensions from the caller.
    from search.embedding.encoding import vector_dims

    try:
        params = {**settings.SEARCH_BACKENDS[alias], **overrides}
    except KeyError:
        raise ImproperlyConfigured(
            f"No search backend {alias!r}; configured: {', '.join(settings.SEARCH_BACKENDS)}"
        ) from None
    module_path = params["BACKEND"]
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"Search backend module {module_path!r} cannot be imported: {exc}") from exc
    return module.SearchBackend(params, vector_dims())


def reset_backends() -> None:
    """Forget cached instances (tests, after settings change)."""
    with _lock:
        _instances.clear()
