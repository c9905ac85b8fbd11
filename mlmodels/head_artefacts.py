"""Fusion-head artefacts: save, verify and load a trained head, and the ``active.json`` pointer.

An artefact is a directory per version (see :func:`save_artefact`): ``head.safetensors``
(weights) and ``head.json`` (dims, the encoders it was trained on, data hash, params, metrics,
temperature, date). The model and its training are in :mod:`mlmodels.head`. Reading and checking
``head.json`` needs no torch; saving and loading weights import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlmodels.fusion import HEAD_KINDS
from mlmodels.registry import ENCODERS
from mlmodels.types import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlmodels.head import TrainedSpace

ARTEFACT_FORMAT = "storefront-fusion-head"
ARTEFACT_FORMAT_VERSION = 1
WEIGHTS_FILE = "head.safetensors"
CONFIG_FILE = "head.json"


class ArtefactError(ValueError):
    """A fusion-head artefact cannot be used; ``reason`` says which file and what is wrong."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def save_artefact(space: TrainedSpace, directory: Path, *, metrics: dict, data_hash: str, encoders: Mapping[str, str] | None = None) -> Path:
    """Write ``directory/<version>/`` with ``head.safetensors`` and ``head.json``; return that path.

    The files are written to a temporary directory beside it and renamed into place, so an
    interrupted save leaves no half-written artefact. An existing artefact of the same version
    (same data and params) is replaced.

    Args:
        space: the trained head.
        directory: the folder holding artefacts (settings ``FUSION_HEAD_DIR``).
        metrics: held-out metrics to record (e.g. ``{"fusion": {...}, "bridge": {...}}``).
        data_hash: hash of the catalog data it was trained on (recorded as is).
        encoders: ``{"text": name, "image": name}``, the registry names of the encoders whose vectors
            it was trained on (default: the default encoders, MiniLM and EfficientNet-Lite0).
    """
    from safetensors.torch import save_file  # torch: loaded only when a head is saved

    names = {"text": DEFAULT_TEXT_ENCODER, "image": DEFAULT_IMAGE_ENCODER, **(encoders or {})}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / space.version
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".tmp-{space.version}-"))
    try:
        save_file(space.state_dict(), str(tmp / WEIGHTS_FILE), metadata={"format": ARTEFACT_FORMAT, "version": space.version})
        config = {
            "format": ARTEFACT_FORMAT, "format_version": ARTEFACT_FORMAT_VERSION,
            "name": space.name, "version": space.version, "kind": space.kind, "dim": space.dim,
            "text_dim": space.text_dim, "image_dim": space.image_dim,
            "text_encoder": names["text"], "image_encoder": names["image"],
            "data_hash": data_hash, "params": space.params, "temperature": space.temperature,
            "metrics": metrics, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "weights_file": WEIGHTS_FILE, "weights_sha256": _sha256(tmp / WEIGHTS_FILE),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
        os.chmod(tmp, 0o755)
        if final.exists():
            trash = Path(tempfile.mkdtemp(dir=directory, prefix=f".old-{space.version}-"))
            os.replace(final, trash / "old")
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    space.metrics = dict(metrics)
    return final


def trained_encoders(config: Mapping) -> dict[str, str]:
    """``{"text": name, "image": name}``: the encoders a head's ``head.json`` says it was trained on.

    Heads saved before the names were recorded were trained on the default encoders.
    """
    return {"text": str(config.get("text_encoder") or DEFAULT_TEXT_ENCODER),
            "image": str(config.get("image_encoder") or DEFAULT_IMAGE_ENCODER)}


def read_artefact_config(path: Path, *, encoders: Mapping[str, str] | None = None) -> dict:
    """The checked ``head.json`` of an artefact directory (no weights loaded).

    Args:
        path: the artefact directory, or its ``head.json``.
        encoders: ``{"text": name, "image": name}``, the encoders in service (``TEXT_ENCODER``,
            ``IMAGE_ENCODER``); a head trained on others' vectors is refused. ``None``: not checked.

    Raises:
        ArtefactError: the directory or file is missing, not JSON, or lacks required keys; its
            input dims are not those of the encoders it names (384 text, 1280 image by default);
            or it was trained on other encoders than ``encoders``.
    """
    path = Path(path)
    folder = path.parent if path.name == CONFIG_FILE else path
    cfg_file = folder / CONFIG_FILE
    if not folder.is_dir():
        raise ArtefactError(f"Fusion head artefact {folder} does not exist.")
    if not cfg_file.is_file():
        raise ArtefactError(f"Fusion head artefact {folder} has no {CONFIG_FILE}.")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtefactError(f"{cfg_file} is not valid JSON ({exc}).") from None
    if not isinstance(config, dict) or config.get("format") != ARTEFACT_FORMAT:
        raise ArtefactError(f"{cfg_file} is not a fusion head config (format is not {ARTEFACT_FORMAT!r}).")
    missing = [k for k in ("version", "kind", "dim", "text_dim", "image_dim", "params", "weights_file") if k not in config]
    if missing:
        raise ArtefactError(f"{cfg_file} lacks {', '.join(missing)}.")
    if config["kind"] not in HEAD_KINDS:
        raise ArtefactError(f"{cfg_file} names head kind {config['kind']!r}; valid kinds: {', '.join(HEAD_KINDS)}.")
    names = trained_encoders(config)
    unknown = [n for n in names.values() if n not in ENCODERS]
    if unknown:
        raise ArtefactError(f"{cfg_file} was trained on encoder {unknown[0]!r}, which is not registered here.")
    text_dim, image_dim = ENCODERS[names["text"]].dim, ENCODERS[names["image"]].dim
    if config["text_dim"] != text_dim or config["image_dim"] != image_dim:
        raise ArtefactError(
            f"{cfg_file} was trained for {config['text_dim']}-d text and {config['image_dim']}-d image features; "
            f"the encoders give {text_dim} and {image_dim}. Train a new head with `manage.py train_fusion`."
        )
    if encoders is not None and names != {"text": encoders["text"], "image": encoders["image"]}:
        raise ArtefactError(
            f"{cfg_file} was trained on {names['text']} text and {names['image']} image vectors; the encoders in service are "
            f"{encoders['text']} and {encoders['image']}. Train a new head with `manage.py train_fusion`."
        )
    if not isinstance(config["dim"], int) or config["dim"] < 1:
        raise ArtefactError(f"{cfg_file} has an invalid dim {config['dim']!r}.")
    config["path"] = str(folder)
    return config


def verify_artefact(path: Path, *, encoders: Mapping[str, str] | None = None) -> dict:
    """:func:`read_artefact_config` plus a check that the weights file exists and matches its checksum.

    Cheap (reads the ~2 MB weights file, loads no model). Returns the config.

    Raises:
        ArtefactError: see :func:`read_artefact_config`; or the weights file is missing or corrupt.
    """
    config = read_artefact_config(path, encoders=encoders)
    weights = Path(config["path"]) / config["weights_file"]
    if not weights.is_file():
        raise ArtefactError(f"Fusion head artefact {config['path']} has no weights file {config['weights_file']}.")
    if config.get("weights_sha256") and _sha256(weights) != config["weights_sha256"]:
        raise ArtefactError(f"{weights} does not match the checksum in {CONFIG_FILE}: the file is corrupt or was replaced.")
    return config


def load_artefact(path: Path, *, expected_dim: int | None = None, encoders: Mapping[str, str] | None = None) -> TrainedSpace:
    """Load an artefact directory (or its ``head.json``) written by :func:`save_artefact`.

    Args:
        path: the artefact directory, or its ``head.json``.
        expected_dim: if given, the shared-space dimension the caller needs (e.g. the dims of a
            live index's fused field).
        encoders: the encoders in service, as for :func:`read_artefact_config`.

    Raises:
        ArtefactError: a missing directory or file, invalid JSON, a weights file that does not
            match its checksum or cannot be read, tensors whose shapes disagree with the config,
            non-finite weights, or a dimension other than ``expected_dim``.
    """
    import torch  # heavy: loaded when a head is loaded, never at start-up
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mlmodels.head import FusionHead, TrainedSpace

    config = verify_artefact(path, encoders=encoders)
    weights = Path(config["path"]) / config["weights_file"]
    if expected_dim is not None and config["dim"] != expected_dim:
        raise ArtefactError(f"Fusion head {config['version']} maps to {config['dim']} dimensions; {expected_dim} are needed.")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtefactError(f"{weights} cannot be read as safetensors ({exc}).") from None
    head = FusionHead(config["dim"], config["kind"], config["text_dim"], config["image_dim"])
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        wrong = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
        raise ArtefactError(
            f"{weights} does not hold a {config['dim']}-d {config['kind']} head: tensors {', '.join(wrong[:4])} "
            f"have shapes {[got.get(k) for k in wrong[:4]]}, expected {[expected.get(k) for k in wrong[:4]]}."
        )
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise ArtefactError(f"{weights} holds NaN or infinite weights.")
    head.load_state_dict(state)
    return TrainedSpace(head, params=config["params"], data_hash=config.get("data_hash", ""), version=config["version"],
                        metrics=config.get("metrics"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ActivePointer:
    """Contents of ``<FUSION_HEAD_DIR>/active.json``: which artefact is in service."""

    version: str
    activated_at: str


ACTIVE_FILE = "active.json"


def read_active(directory: Path) -> ActivePointer | None:
    """The active pointer in ``directory``, or ``None`` when no head was ever activated.

    Raises:
        ArtefactError: the pointer file exists but is not valid.
    """
    file = Path(directory) / ACTIVE_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return ActivePointer(version=str(data["version"]), activated_at=str(data.get("activated_at", "")))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtefactError(f"{file} is not a valid pointer to a fusion head ({exc}).") from None


def write_active(directory: Path, version: str | None) -> None:
    """Point ``active.json`` at artefact ``version`` (atomic replace), or remove it (``None``: cold start)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / ACTIVE_FILE
    if version is None:
        file.unlink(missing_ok=True)
        return
    payload = json.dumps({"version": version, "activated_at": datetime.now(UTC).isoformat(timespec="seconds")})
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-active-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, file)
