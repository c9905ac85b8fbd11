"""The encoders' networks through ONNX Runtime on CPU: export once, cache, verify, run.

Shared by the image encoder (:mod:`mlmodels.image`) and the text encoder (:mod:`mlmodels.text`);
each describes its graph with an :class:`ExportSpec`. A network is exported as loaded with
torch's TorchScript exporter (``dynamo=False``; it needs the ``onnx`` package, the dynamo one
needs ``onnxscript`` too) and the spec's dynamic axes. The file lands in a cache folder under a
name keyed by the weights' SHA-256, the torch version and the spec's export format, written to
a temporary file and moved into place with :func:`os.replace`, so worker processes starting at
once never read a half-written file. Every load runs a fixed probe batch through both
runtimes and refuses an export whose outputs differ from torch's (a truncated or damaged
file, an onnxruntime that computes differently): the cache is then exported again, and when
that fails too the encoder keeps torch with one warning (:func:`load_runtime`). Nothing is
exported at import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from mlmodels.types import RUNTIMES

logger = logging.getLogger(__name__)

#: ONNX opset of the exports; onnxruntime 1.31 runs opsets up to 23.
OPSET = 17
_warned: set[str] = set()


class OnnxExportError(RuntimeError):
    """An export could not be written, loaded, or does not compute what torch computes."""


@dataclass(frozen=True)
class ExportSpec:
    """How one encoder's network is exported, named and checked.

    Attributes:
        model_name: first part of the cache file name, e.g. ``"efficientnet-lite0"``.
        label: the encoder in messages, lower case, e.g. ``"image encoder"``.
        setting: the setting / environment variable choosing the runtime, e.g. ``"IMAGE_ENCODER_RUNTIME"``.
        export_format: bump when the graph's inputs or outputs change, so older cached files are ignored.
        input_names: the graph's inputs, in the order the module's ``forward`` takes them.
        output_names: the graph's outputs, in the order ``forward`` returns them.
        dynamic_axes: per input and output name, ``{axis: name}`` of the axes whose size varies.
        atol: per output, the largest absolute difference from torch a loaded export may show on
            the probe batch.
    """

    model_name: str
    label: str
    setting: str
    export_format: int
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]]
    atol: tuple[float, ...]


def default_cache_dir() -> Path:
    """``ENCODER_CACHE_DIR``, else ``$XDG_CACHE_HOME/storefront-search/models`` (``~/.cache`` by default).

    The Django settings pass their own ``ENCODER_CACHE_DIR`` (default ``VAR_DIR/models``).
    """
    if os.environ.get("ENCODER_CACHE_DIR"):
        return Path(os.environ["ENCODER_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "storefront-search" / "models"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (EfficientNet's 19 MB weights: ~20 ms; MiniLM's 91 MB: ~60 ms)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def export_file_name(spec: ExportSpec, weights_sha256: str) -> str:
    """Cache file name for an export, e.g. ``efficientnet-lite0-<sha[:16]>-torch2.14.1-f1.onnx``."""
    torch_version = re.sub(r"[^A-Za-z0-9._-]", "_", torch.__version__)
    return f"{spec.model_name}-{weights_sha256[:16]}-torch{torch_version}-f{spec.export_format}.onnx"


def export_onnx(module: torch.nn.Module, path: Path, spec: ExportSpec, example: Mapping[str, torch.Tensor]) -> None:
    """Export ``module`` to ``path`` atomically, traced on ``example`` (one tensor per input name).

    Raises:
        OnnxExportError: the exporter failed (e.g. the ``onnx`` package is missing) or the
            folder is not writable; ``path`` is left as it was.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise OnnxExportError(f"cannot write to {path.parent}: {exc}") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(
                module, tuple(example[name] for name in spec.input_names), tmp, dynamo=False, opset_version=OPSET,
                input_names=list(spec.input_names), output_names=list(spec.output_names),
                dynamic_axes={name: dict(axes) for name, axes in spec.dynamic_axes.items()},
            )
        os.replace(tmp, path)
    except Exception as exc:
        raise OnnxExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class OnnxSession:
    """An onnxruntime CPU session over an exported network.

    ``run`` is safe to call from several threads at once (onnxruntime sessions are).

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``ENCODER_CPU_THREADS``); inter-op is always 1.

    Raises:
        OnnxExportError: the file does not load (missing, truncated, not ONNX).
    """

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort  # heavy: loaded when an encoder first runs on ONNX Runtime

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise OnnxExportError(f"onnxruntime cannot load {path}: {exc}") from exc
        self.path = path
        self.threads = threads
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One forward pass: the graph's inputs by name -> its outputs, in graph order."""
        return self._session.run(list(self.output_names), {name: np.ascontiguousarray(inputs[name]) for name in self.input_names})


def verify(session: OnnxSession, module: torch.nn.Module, spec: ExportSpec, probe: Mapping[str, torch.Tensor]) -> None:
    """Run ``probe`` through both runtimes and compare every output.

    Raises:
        OnnxExportError: the graph's inputs or outputs are not the spec's, an output differs
            by more than its ``spec.atol``, or the session fails to run.
    """
    if session.input_names != spec.input_names or session.output_names != spec.output_names:
        raise OnnxExportError(f"{session.path} has inputs {session.input_names} and outputs {session.output_names}")
    with torch.inference_mode():
        want = module(*(probe[name] for name in spec.input_names))
    want = [t.numpy() for t in (want if isinstance(want, tuple) else (want,))]
    try:
        got = session.run({name: t.numpy() for name, t in probe.items()})
    except Exception as exc:
        raise OnnxExportError(f"onnxruntime failed on {session.path}: {exc}") from exc
    diffs = [float(np.abs(g - w).max()) if g.shape == w.shape else np.inf for g, w in zip(got, want, strict=True)]
    if not all(d <= tol for d, tol in zip(diffs, spec.atol, strict=True)):
        detail = ", ".join(f"{name} {d:.2g}" for name, d in zip(spec.output_names, diffs, strict=True))
        raise OnnxExportError(f"{session.path} differs from torch ({detail})")


def load_onnx_session(
    module: torch.nn.Module, spec: ExportSpec, *, probe: Mapping[str, torch.Tensor], weights_path: Path,
    cache_dir: Path, threads: int,
) -> tuple[OnnxSession, bool]:
    """The cached export of ``module`` if it loads and matches torch, else a fresh export.

    Args:
        module: the network as loaded, in eval mode on CPU (``spec.input_names`` -> ``spec.output_names``).
        spec: how it is exported and checked.
        probe: a fixed batch, one tensor per input name; traced for the export, and compared on.
        weights_path: the weights file ``module`` was loaded from (its checksum keys the cache).
        cache_dir: folder of cached exports (created if missing).
        threads: onnxruntime intra-op threads.

    Returns:
        (session, exported): ``exported`` is True when this call wrote the file.

    Raises:
        OnnxExportError: no export could be written, loaded, or made to match torch. A cached
            file that fails is exported again once, with a warning, before this is raised.
        ImportError: onnxruntime is not installed.
    """
    import onnxruntime  # noqa: F401  (fail before exporting anything)

    path = Path(cache_dir) / export_file_name(spec, file_sha256(Path(weights_path)))
    if path.is_file():
        try:
            session = OnnxSession(path, threads)
            verify(session, module, spec, probe)
            return session, False
        except OnnxExportError as exc:
            logger.warning("Cached %s export is unusable, exporting it again: %s", spec.label, exc)
    started = time.perf_counter()
    export_onnx(module, path, spec, probe)
    session = OnnxSession(path, threads)
    verify(session, module, spec, probe)
    logger.info("Exported the %s to %s in %.1f s", spec.label, path, time.perf_counter() - started)
    return session, True


def select_runtime(spec: ExportSpec, preferred: str | None, device: torch.device) -> str:
    """The runtime an encoder's network runs on: ``"onnx"`` or ``"torch"``.

    Args:
        spec: the encoder's export (names the setting).
        preferred: ``"auto"`` (ONNX Runtime on CPU, torch on CUDA), ``"onnx"`` or ``"torch"``.
            Defaults to the environment variable ``spec.setting``, else ``"auto"``.
        device: the encoder's device; on anything but CPU the answer is always ``"torch"``.

    Raises:
        ValueError: ``preferred`` is not one of :data:`RUNTIMES`.
    """
    choice = (preferred or os.environ.get(spec.setting) or "auto").lower()
    if choice not in RUNTIMES:
        raise ValueError(f"Unknown {spec.label} runtime {choice!r}; valid values: {', '.join(RUNTIMES)}")
    if device.type != "cpu":
        return "torch"
    return "torch" if choice == "torch" else "onnx"


def describe_runtime(
    spec: ExportSpec, device: torch.device, runtime: str | None, cache_dir: str | Path | None, weights_path: Path,
) -> str:
    """What an encoder runs on in a process with these settings, without loading it.

    E.g. ``"onnxruntime 1.31.1 on cpu (export cached: <path>)"`` or ``"torch on cuda"``. A
    process whose export fails at load falls back to torch and logs why; this cannot see that.

    Raises:
        ValueError: an unknown ``runtime``.
    """
    if select_runtime(spec, runtime, device) == "torch":
        return f"torch on {device.type}" + (f" ({spec.setting}=torch)" if device.type == "cpu" else "")
    try:
        ort_version = version("onnxruntime")
    except PackageNotFoundError:
        return "torch on cpu (onnxruntime is not installed)"
    path = Path(cache_dir or default_cache_dir()) / export_file_name(spec, file_sha256(weights_path))
    state = f"export cached: {path}" if path.is_file() else f"exported on first use to {path}"
    return f"onnxruntime {ort_version} on cpu ({state})"


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime an encoder ended up with.

    Attributes:
        runtime: ``"onnx"`` or ``"torch"`` (``"torch"`` after a fallback too).
        note: what runs and why, e.g. for ``manage.py search_status``.
        session: the ONNX Runtime session, or ``None`` when torch runs.
        exported: True when this load wrote the ONNX export (False when it reused the cache).
    """

    runtime: str
    note: str
    session: OnnxSession | None = None
    exported: bool = False


def load_runtime(
    module: torch.nn.Module, spec: ExportSpec, *, wanted: str, device: torch.device,
    probe: Mapping[str, torch.Tensor], weights_path: Path, cache_dir: str | Path | None, threads: int,
) -> RuntimeChoice:
    """ONNX Runtime when ``wanted`` says so and it loads, else torch with one warning per reason.

    Args:
        module: the network as loaded (on ``device``, eval mode).
        spec: how it is exported and checked.
        wanted: ``"onnx"`` or ``"torch"``, from :func:`select_runtime`.
        device: the encoder's device.
        probe: the fixed batch of :func:`load_onnx_session`.
        weights_path: the weights file (its checksum keys the cache).
        cache_dir: folder of exports (default :func:`default_cache_dir`).
        threads: ONNX Runtime intra-op threads.

    Never raises for ONNX problems: search keeps working on torch, only slower.
    """
    if wanted != "onnx":
        return RuntimeChoice("torch", f"torch on {device.type}")
    try:
        session, exported = load_onnx_session(
            module, spec, probe=probe, weights_path=weights_path, cache_dir=Path(cache_dir or default_cache_dir()),
            threads=threads,
        )
    except ImportError as exc:
        reason = f"onnxruntime is not installed ({exc})"
    except OnnxExportError as exc:
        reason = str(exc)
    else:
        import onnxruntime  # loaded by the session above already

        note = f"onnxruntime {onnxruntime.__version__} on cpu, {threads} thread(s), {session.path}"
        return RuntimeChoice("onnx", note, session, exported)
    message = f"{spec.label.capitalize()} falls back to torch on CPU (slower): {reason}"
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)
    return RuntimeChoice("torch", f"torch on cpu (ONNX Runtime unavailable: {reason})")
