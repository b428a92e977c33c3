"""The one typed request of a render: photos, paintings with their masks and blend weights,
the preset and the knobs over it, output rules, device and cluster.

The command line, :func:`stylecascade.render`, :func:`stylecascade.render_batch` and the
cluster all describe a render with a :class:`RenderRequest` and hand it to
:mod:`stylecascade.launch`. Free of torch, so the command line builds and checks it before
torch is imported. Field names are the Python API's argument names; error messages name them
(:class:`~stylecascade.errors.ArgumentError`) and the command line shows its flags instead.
"""

from __future__ import annotations

import functools
import os
import reprlib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .choices import MAX_INPUT_PIXELS, check_seed
from .errors import ArgumentError, ArgumentTypeError, literal
from .naming import DEFAULT_NAME

if TYPE_CHECKING:
    from .images import ImageSource
    from .preset import Preset


_PATH = str | os.PathLike
FIELD_TYPES: dict[str, Any] = {
    "photos": Sequence[_PATH],
    "blend_weights": Sequence[float] | None,
    "masks": Sequence[_PATH | None] | None,
    "color": str | None,
    "size": int | None,
    "print_size": str | None,
    "dpi": float | None,
    "tile_size": int | None,
    "content_weight": float | None,
    "style_weight": float | None,
    "tv_weight": float | None,
    "iterations": int | None,
    "init": str | None,
    "init_image": _PATH | None,
    "style_scale": float | None,
    "output": _PATH | None,
    "out_dir": _PATH | None,
    "name": str,
    "save_stages": _PATH | None,
    "save_every": int | None,
    "print_every": int | None,
    "overwrite": bool,
    "resume": bool,
    "bit_depth": int,
    "jpeg_quality": int,
    "max_input_pixels": int,
    "seed": int,
    "threads": int | None,
    "weights": _PATH,
    "cluster": str | None,
    "actors": int | None,
    "cpus_per_actor": int | None,
    "quiet": bool,
    "yes": bool,
}
"""The type of each field a caller gives as a plain value, checked strictly by pydantic
(no ``"128"`` for 128, no ``1.5`` or ``True`` for an integer); ``styles``, ``preset`` and
``device`` are checked where they are read."""


@functools.cache
def _adapter(kind: Any) -> Any:
    """pydantic's strict validator of ``kind`` (imported here: 0.2 s kept off the CLI's
    start-up)."""
    from pydantic import ConfigDict, TypeAdapter

    return TypeAdapter(kind, config=ConfigDict(strict=True, arbitrary_types_allowed=True))


_NAMES = {int: "an int", float: "a number", str: "a str", bool: "True or False"}


def _describe(kind: Any) -> str:
    """``int | None`` → ``an int or None``; ``Sequence[float]`` → ``a list, each a number``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = typing.get_args(kind)
        path = str in args and os.PathLike in args
        rest = [_describe(a) for a in args if not (path and a in (str, os.PathLike))]
        return " or ".join(["a path (str or os.PathLike)"] * path + rest)
    if typing.get_origin(kind) is Sequence:
        return f"a list (each {_describe(typing.get_args(kind)[0])})"
    return "None" if kind is type(None) else _NAMES.get(kind, getattr(kind, "__name__", "?"))


def _check_type(argument: str, value: Any, kind: Any) -> None:
    """Raise :class:`ArgumentTypeError` unless ``value`` is of ``kind`` (strictly)."""
    from pydantic import ValidationError

    try:
        _adapter(kind).validate_python(value)
    except ValidationError:
        wanted, shown = _describe(kind), reprlib.repr(value)
        raise ArgumentTypeError(
            argument, f"{{}} must be {wanted}; got {literal(shown)} ({type(value).__name__})"
        ) from None


@dataclass(frozen=True, kw_only=True)
class RenderRequest:
    """Everything one render (or one batch) is asked to do.

    Attributes:
        photos: the photos, or folders of photos (a batch); empty for an in-memory render.
        styles: the paintings to blend (paths; images in memory for :func:`render`);
            ``None``: the preset's own.
        blend_weights: each painting's share of the blend, ≥ 0, normalized (default equal):
            jcjohnson/neural-style's ``-style_blend_weights``.
        masks: where each painting applies, one grayscale file per painting on the photo
            (``None`` in the list: everywhere).
        preset: a preset name, YAML file, a past render's ``OUT.json`` or a ``Preset``;
            ``None``: ``draft`` on a CPU, ``standard`` on a GPU.
        color: color mode (``none``, ``luminance``, ``histogram``, ``luminance-only``).
        size: final long edge in px; the earlier stages scale with it.
        print_size: a print size such as ``30x40cm`` (with ``dpi``: the final long edge).
        dpi: print resolution (default 300 DPI); written into the file.
        tile_size: tile edge in px for larger stages (0: only when a stage does not fit).
        content_weight, style_weight, tv_weight: multiply every stage's content weight α,
            style weight β and TV weight γ (``None``: the preset's).
        iterations: the last stage's evaluation cap, every stage's cap scaled alike;
            init: the first stage's start; style_scale: multiplies every stage's style scale
            (jcjohnson/neural-style's ``-num_iterations``, ``-init``, ``-style_scale``);
            init_image: an image the first stage starts from (``-init_image``).
        output: the output image of a single photo (default ``CONTENT-STYLES.png``).
        out_dir: a batch's output folder (its presence makes a batch).
        name: a batch's output file name pattern (``{content}``, ``{styles}``, ``{preset}``,
            ``{seed}``).
        save_stages: folder for each stage's image.
        save_every: also write each stage's best image so far every N evaluations into
            ``save_stages`` (jcjohnson's ``-save_iter``); print_every: a progress line every N
            evaluations (``-print_iter``).
        overwrite: replace existing outputs; resume: continue from a checkpoint.
        bit_depth: 8 or 16 bits per channel; jpeg_quality: 1–95.
        max_input_pixels: refuse larger inputs (decompression bombs); 0: no limit.
        device: ``auto``, ``cuda``, ``mps`` or ``cpu``; seed: 0 … 2⁶⁴ − 1.
        threads: CPU threads (``None``: one per core); weights: ``caffe``, ``torchvision`` or
            a weights file.
        cluster: ``local``, ``auto`` or ``ray://HOST:PORT`` to render a batch on Ray;
            actors: at most this many; cpus_per_actor: CPUs per actor without GPUs.
        quiet: no progress, no header.
        yes: start a render estimated over 30 minutes on a CPU (the command line asks for
            ``--yes``; the Python API starts it).
    """

    photos: Sequence[Path] = ()
    styles: Sequence[ImageSource] | None = None
    blend_weights: Sequence[float] | None = None
    masks: Sequence[str | Path | None] | None = None
    preset: str | Preset | None = None
    color: str | None = None
    size: int | None = None
    print_size: str | None = None
    dpi: float | None = None
    tile_size: int | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    iterations: int | None = None
    init: str | None = None
    init_image: Path | None = None
    style_scale: float | None = None
    output: Path | None = None
    out_dir: Path | None = None
    name: str = DEFAULT_NAME
    save_stages: Path | None = None
    save_every: int | None = None
    print_every: int | None = None
    overwrite: bool = False
    resume: bool = False
    bit_depth: int = 8
    jpeg_quality: int = 95
    max_input_pixels: int = MAX_INPUT_PIXELS
    device: Any = "auto"
    seed: int = 0
    threads: int | None = None
    weights: str = "caffe"
    cluster: str | None = None
    actors: int | None = None
    cpus_per_actor: int | None = None
    quiet: bool = False
    yes: bool = True

    @functools.cached_property
    def batch(self) -> bool:
        """Whether this is a batch: several photos, a folder, or an ``out_dir`` (the photos
        are looked at once; several places ask)."""
        photos = list(self.photos)
        return len(photos) > 1 or self.out_dir is not None or any(p.is_dir() for p in photos)

    def check(self) -> None:
        """The checks that need no file and no torch, in one place.

        Raises:
            ArgumentTypeError: an argument of another type than its field's
                (:data:`FIELD_TYPES`; ``True`` is no number here).
            ArgumentError: a seed out of range; ``output`` with a batch; masks that
                are not paths; ``actors``/``cpus_per_actor`` without ``cluster`` or < 1;
                ``cluster`` for a single photo.
        """
        masks = self.masks if isinstance(self.masks, (list, tuple)) else ()
        if not all(m is None or isinstance(m, (str, os.PathLike)) for m in masks):
            raise ArgumentError(
                "masks", "{}= takes mask file paths (or None for everywhere), one per style"
            )
        for argument, kind in FIELD_TYPES.items():
            _check_type(argument, getattr(self, argument), kind)
        from .preset import Preset  # torch-free, like this module

        _check_type("preset", self.preset, str | os.PathLike | Preset | None)
        check_seed(self.seed)
        if self.batch and self.output is not None:
            raise ArgumentError(
                "output", "{} names one output; for several photos use {} and {}", "out_dir", "name"
            )
        for argument in ("save_every", "print_every"):
            value = getattr(self, argument)
            if value is not None and value < 1:
                raise ArgumentError(argument, f"{{}} must be ≥ 1; got {value}")
        if self.save_every is not None and self.save_stages is None:
            raise ArgumentError(
                "save_every", "{} writes into the {} folder: give it", "save_stages"
            )
        for argument in ("actors", "cpus_per_actor"):
            value = getattr(self, argument)
            if value is not None and self.cluster is None:
                raise ArgumentError(argument, "{} goes with {} ADDRESS", "cluster")
            if value is not None and value < 1:
                raise ArgumentError(argument, f"{{}} must be ≥ 1; got {value}")
        if self.cluster is not None and not self.batch:
            raise ArgumentError(
                "cluster", "{} renders batches: give a folder or several photos, or {}", "out_dir"
            )
