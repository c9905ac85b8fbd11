"""The image encoder's network through ONNX Runtime on CPU: export once, cache, verify, run.

The network is exported exactly as loaded (its ReLU6 activations included: the package's
``set_swish`` swaps them for Swish, and the features of such an export are garbage) with
torch's TorchScript exporter (``dynamo=False``; it needs the ``onnx`` package, the dynamo one
needs ``onnxscript`` too) and a dynamic batch axis. The file lands in a cache folder under a
name keyed by the weights' SHA-256, the torch version and :data:`EXPORT_FORMAT`, written to a
temporary file and moved into place with :func:`os.replace`, so worker processes starting at
once never read a half-written file. Every load runs a fixed probe batch through both
runtimes and refuses an export whose outputs differ from torch's (a truncated or damaged
file, an onnxruntime that computes differently): the caller then exports again or keeps torch.
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
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Bump when the exported graph's inputs or outputs change, so older cached files are ignored.
EXPORT_FORMAT = 1
#: ONNX opset of the export; onnxruntime 1.31 runs opsets up to 23.
OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAMES = ("features", "logits")
#: Largest difference from torch a loaded export may show on the probe batch. Measured on real
#: photos: 5e-7 on the L2-normalised features, 1e-5 on logits of magnitude ~10.
FEATURES_ATOL = 1e-4
LOGITS_ATOL = 1e-3


class OnnxExportError(RuntimeError):
    """An export could not be written, loaded, or does not compute what torch computes."""


def default_cache_dir() -> Path:
    """``ENCODER_CACHE_DIR``, else ``$XDG_CACHE_HOME/storefront-search/models`` (``~/.cache`` by default).

    The Django settings pass their own ``ENCODER_CACHE_DIR`` (default ``VAR_DIR/models``).
    """
    if os.environ.get("ENCODER_CACHE_DIR"):
        return Path(os.environ["ENCODER_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "storefront-search" / "models"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the weights file: ~19 MB, ~30 ms)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_file_name(model_name: str, weights_sha256: str) -> str:
    """Cache file name for an export, e.g. ``efficientnet-lite0-<sha[:16]>-torch2.14.1-f1.onnx``."""
    torch_version = re.sub(r"[^A-Za-z0-9._-]", "_", torch.__version__)
    return f"{model_name}-{weights_sha256[:16]}-torch{torch_version}-f{EXPORT_FORMAT}.onnx"


def probe_batch(input_size: int) -> torch.Tensor:
    """A fixed ``(2, 3, input_size, input_size)`` batch in [-1, 1] (seeded) to compare runtimes on."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand((2, 3, input_size, input_size), generator=generator) * 2 - 1


def export_onnx(module: torch.nn.Module, path: Path, input_size: int) -> None:
    """Export ``module`` (pixels ``(n, 3, s, s)`` -> features, logits) to ``path`` atomically.

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
    batch_axis = {0: "batch"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(
                module, (torch.zeros(1, 3, input_size, input_size),), tmp, dynamo=False, opset_version=OPSET,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: batch_axis for name in (INPUT_NAME, *OUTPUT_NAMES)},
            )
        os.replace(tmp, path)
    except Exception as exc:
        raise OnnxExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class OnnxImageSession:
    """An onnxruntime CPU session over an exported image network.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``ENCODER_CPU_THREADS``); inter-op is always 1.

    Raises:
        OnnxExportError: the file does not load (missing, truncated, not ONNX).
    """

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

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

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``pixels`` ``(n, 3, s, s)`` float32 -> (features ``(n, 1280)``, logits ``(n, 1000)``), float32."""
        features, logits = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(pixels, np.float32)})
        return features, logits


def verify(session: OnnxImageSession, module: torch.nn.Module, probe: torch.Tensor) -> None:
    """Run ``probe`` through both runtimes.

    Raises:
        OnnxExportError: the outputs differ by more than :data:`FEATURES_ATOL` / :data:`LOGITS_ATOL`
            or the session fails to run.
    """
    with torch.inference_mode():
        want_features, want_logits = (t.numpy() for t in module(probe))
    try:
        features, logits = session.run(probe.numpy())
    except Exception as exc:
        raise OnnxExportError(f"onnxruntime failed on {session.path}: {exc}") from exc
    diff_f = float(np.abs(features - want_features).max()) if features.shape == want_features.shape else np.inf
    diff_l = float(np.abs(logits - want_logits).max()) if logits.shape == want_logits.shape else np.inf
    if not (diff_f <= FEATURES_ATOL and diff_l <= LOGITS_ATOL):
        raise OnnxExportError(f"{session.path} differs from torch (features {diff_f:.2g}, logits {diff_l:.2g})")


def load_onnx_session(
    module: torch.nn.Module, *, model_name: str, weights_path: Path, cache_dir: Path, threads: int, input_size: int,
) -> tuple[OnnxImageSession, bool]:
    """The cached export of ``module`` if it loads and matches torch, else a fresh export.

    Args:
        module: the network as loaded, in eval mode on CPU (pixels -> features, logits).
        model_name: first part of the cache file name.
        weights_path: the weights file ``module`` was loaded from (its checksum keys the cache).
        cache_dir: folder of cached exports (created if missing).
        threads: onnxruntime intra-op threads.
        input_size: side of the square input, pixels.

    Returns:
        (session, exported): ``exported`` is True when this call wrote the file.

    Raises:
        OnnxExportError: no export could be written, loaded, or made to match torch. A cached
            file that fails is exported again once, with a warning, before this is raised.
        ImportError: onnxruntime is not installed.
    """
    import onnxruntime  # noqa: F401  (fail before exporting anything)

    path = Path(cache_dir) / export_file_name(model_name, file_sha256(Path(weights_path)))
    probe = probe_batch(input_size)
    if path.is_file():
        try:
            session = OnnxImageSession(path, threads)
            verify(session, module, probe)
            return session, False
        except OnnxExportError as exc:
            logger.warning("Cached image encoder export is unusable, exporting it again: %s", exc)
    started = time.perf_counter()
    export_onnx(module, path, input_size)
    session = OnnxImageSession(path, threads)
    verify(session, module, probe)
    logger.info("Exported the image encoder to %s in %.1f s", path, time.perf_counter() - started)
    return session, True
