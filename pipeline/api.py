"""The Python API: style transfer from a notebook or a script.

>>> from stylecascade import render
>>> result = render("photo.jpg", "painting.jpg", preset="draft", size=256)
>>> result.image.save("styled.png")

Both functions take the command line's knobs under their Python names (``blend_weights`` for
``--blend-weight``, ``masks`` for ``--mask`` …) and go through the same launcher
(:mod:`stylecascade.launch`): :func:`render` in memory, :func:`render_batch` into files.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from rich.console import Console
from torch import Tensor

from .choices import DEFAULT_NAME, MAX_INPUT_PIXELS
from .gate import check_one, content_shape
from .images import ImageSource
from .launch import (
    cluster_session,
    launch,
    request_renderer,
    select_device_for,
    start_print_tiles,
)
from .preset import Preset
from .progress import progress_by_default, stage_progress
from .records import Outcome
from .renderer import RenderResult
from .request import RenderRequest, check_arguments
from .runner import Observer
from .stages.stopping import StopHandle


def render(
    content: ImageSource,
    styles: ImageSource | Sequence[ImageSource] | None = None,
    *,
    preset: str | Path | Preset | None = None,
    blend_weights: Sequence[float] | None = None,
    masks: Sequence[str | Path | None] | None = None,
    size: int | None = None,
    print_size: str | None = None,
    dpi: float | None = None,
    color: str | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    style_loss: str | None = None,
    iterations: int | None = None,
    init: str | None = None,
    init_image: str | Path | None = None,
    style_scale: float | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    weights: str | Path = "caffe",
    tile_size: int | None = None,
    progress: bool | Observer | None = None,
    stop: StopHandle | None = None,
    cluster: str | None = None,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    yes: bool | None = None,
) -> RenderResult:
    """Stylize ``content`` with the style of ``styles``, coarse to fine (Gatys et al. 2016;
    stages as in Gatys et al. 2017, Sec. 5), in memory: nothing is written.

    Args:
        content: the photo: a path, a PIL image, or a float tensor ``(3, H, W)`` /
            ``(1, 3, H, W)`` in 0–1 (sRGB).
        styles: one painting or several to blend, each like ``content``; ``None``: the
            preset's own paintings.
        preset: a preset name (bundled or saved), a YAML path, a past render's ``OUT.json``,
            or a :class:`~stylecascade.preset.Preset`; ``None``: ``draft`` on a CPU,
            ``standard`` on a GPU.
        blend_weights: each painting's share of the blend, ≥ 0 (normalized; default equal).
        masks: one mask file per painting (grayscale on the photo, white = this painting,
            grey = part of its weight; ``None``: everywhere): spatial control, Gatys et al.
            2017, Sec. 4.
        size: long edge of the final stage in px; earlier stages scale with it.
        print_size, dpi: a print size like ``30x40cm`` at ``dpi`` (default 300) instead of
            ``size``.
        color: color mode: ``none``, ``luminance``, ``histogram`` or ``luminance-only``.
        content_weight, style_weight, tv_weight: multiply every stage's content weight α,
            style weight β and TV weight γ (jcjohnson/neural-style's knobs).
        style_loss: compare styles by ``gram``, ``w2`` or ``swd`` in every stage (``None``:
            the preset's).
        iterations: the last stage's evaluation cap, the others scaled alike
            (``-num_iterations``); init: the first stage's start, one of ``content``,
            ``noise``, ``style``, ``style-stats``, ``style-mean+detail`` (``-init``); init_image:
            an image file the first stage starts from instead (``-init_image``); style_scale:
            multiplies every stage's style scale (``-style_scale``).
        device: ``auto``, ``cuda``, ``mps``, ``cpu`` or a ``torch.device``.
        seed: makes the render repeatable (same seed, threads and device).
        weights: VGG19 weights: ``caffe``, ``torchvision`` or a file path.
        tile_size: run stages larger than this many px in tiles (0: only when needed).
        progress: ``True`` for progress bars on stderr, or an observer of your own; ``None``
            (the default): bars in a notebook or when stderr is a terminal, else nothing
            (:func:`~stylecascade.progress.progress_by_default`).
        stop: a :class:`~stylecascade.stages.stopping.StopHandle`; calling its ``stop()`` from
            another thread ends the render at its next evaluation, and the result holds the
            stages so far and the stopped stage's best image (manifest status ``stopped``).
        cluster: ``None`` (render here), ``local``, ``auto`` or ``ray://HOST:PORT``: the
            network runs on the Ray cluster's actors (``device`` is theirs), a tiled stage's
            tiles spread over them, an untiled stage on one; this process keeps the image and
            the optimizer (on its CPU); the manifest's ``cluster`` says where the time went
            (:mod:`stylecascade.tile_cluster`; needs the ``cluster`` extra).
        actors: on a cluster, at most this many actors; cpus_per_actor: CPUs per actor
            without GPUs (default 1).
        yes: start a render estimated over 30 minutes on a CPU above its preset's own size
            (the time gate, ``gate.check_one``; its estimate is said on stderr with the
            progress bars). ``None`` (the default): ask only where someone can answer, in a
            notebook or with stderr on a terminal (where progress shows by default): there
            such a render raises the gate's error, which names ``yes=True`` and a ``size=`` (or
            ``dpi=``) within 30 min; a script whose stderr is a file or a pipe starts it.
            ``False``: always refuse it, as the command line does without ``--yes``.

    Returns:
        :class:`~stylecascade.renderer.RenderResult` with the PIL image, the stage images and
        the manifest.

    Raises:
        ArgumentTypeError: (also a ``TypeError``) an argument not of its annotated type,
            strictly, named (``request.check_arguments``: no text as a list, no mapping as a
            list, no ``"no"`` for ``False``, no empty text, no PIL image of 0 px).
        ArgumentError, UsageError: bad inputs or options (a
            :class:`~stylecascade.errors.StyleCascadeError`).
        TooLong: (an ``ArgumentError``) over 30 minutes on a CPU without ``yes`` (see ``yes``).
        WeightsError: the weights cannot be fetched or loaded.
        DivergedError: the optimization kept producing NaN/inf losses.
        ClusterError: Ray is missing, or the cluster cannot be reached or run an actor.
    """
    check_arguments(render, locals())
    request = _request(
        locals(),
        actors=actors if cluster else None,  # as render_batch: cluster options without a
        cpus_per_actor=cpus_per_actor if cluster else None,  # cluster are not an error here
        yes=_yes(yes),
    )
    request.check()
    if progress is None:
        progress = progress_by_default()
    said = Console(stderr=True) if progress is True else None
    with ExitStack() as stack:
        session = cluster_session(request, stack)  # the actors' device picks the preset
        driver = None if session is None else torch.device("cpu")  # the image, the optimizer
        renderer = request_renderer(request, select_device_for(device, session), driver)
        if session is None:  # the time gate, said with the bars; never the weights
            default = renderer.look.stages[-1].long_edge
            check_one(said, request, renderer.preset, renderer.device, default, content)
        else:  # the print's tile actors, a stage that fits none refused before any work
            start_print_tiles(request, session, renderer, stack, said, content_shape(content))
        observer = stack.enter_context(stage_progress(said)) if said else progress or None
        return renderer.render(content, seed=seed, observer=observer, stop=stop)


def _yes(yes: bool | None) -> bool:
    """The request's ``yes`` of an API call's: ``None`` starts a long render only where nobody
    can answer the gate (not in a notebook, stderr not a terminal:
    :func:`~stylecascade.progress.progress_by_default`)."""
    return (not progress_by_default()) if yes is None else yes


def _request(arguments: dict[str, Any], **given: Any) -> RenderRequest:
    """The request of an API call: every argument (``locals()``) that is a field of the
    record (:mod:`stylecascade.record`), with ``styles`` as a list and the ``given`` fields
    overriding."""
    names = set(RenderRequest().fields()) - {"styles", *given}
    styles = arguments["styles"]
    one = isinstance(styles, (str, Path, Image.Image, Tensor))
    return RenderRequest.of(
        styles=None if styles is None else [styles] if one else list(styles),
        **{k: v for k, v in arguments.items() if k in names},
        **given,
    )


def render_batch(
    photos: Sequence[str | Path],
    out_dir: str | Path,
    styles: str | Path | Sequence[str | Path] | None = None,
    *,
    blend_weights: Sequence[float] | None = None,
    masks: Sequence[str | Path | None] | None = None,
    preset: str | Path | Preset | None = None,
    color: str | None = None,
    size: int | None = None,
    print_size: str | None = None,
    dpi: float | None = None,
    tile_size: int | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    style_loss: str | None = None,
    iterations: int | None = None,
    init: str | None = None,
    init_image: str | Path | None = None,
    style_scale: float | None = None,
    name: str = DEFAULT_NAME,
    save_stages: str | Path | None = None,
    save_every: int | None = None,
    print_every: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    bit_depth: int = 8,
    jpeg_quality: int = 95,
    profile: str = "srgb",
    intent: str = "perceptual",
    black_point_compensation: bool = True,
    compression: str = "deflate",
    bleed: str | None = None,
    safe_margin: str | None = None,
    max_input_pixels: int = MAX_INPUT_PIXELS,
    device: str | torch.device = "auto",
    seed: int = 0,
    threads: int | None = None,
    weights: str | Path = "caffe",
    cluster: str | None = None,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    progress: bool | None = None,
    yes: bool | None = None,
) -> list[Outcome]:
    """Apply one look to many photos, writing one output and its manifest per photo into
    ``out_dir`` — what ``stylecascade render PHOTOS --out-dir OUT`` does, with every option of
    the command line — in this process or, with ``cluster``, on the actors of a Ray cluster.

    Args:
        photos: photo files, or folders whose image files are all taken.
        out_dir: where the outputs go (created if missing); an existing output is skipped
            unless ``overwrite``.
        styles: the painting(s) to blend; ``None``: the preset's own (a saved look).
        blend_weights, masks, preset, color, size, print_size, dpi, tile_size,
            content_weight, style_weight, tv_weight, style_loss, iterations, init, init_image,
            style_scale: the look, as for :func:`render`.
        name: output file name pattern (``{content}``, ``{ext}``, ``{styles}``, ``{preset}``,
            ``{seed}``).
        save_stages: folder for each stage's image of every photo.
        save_every: also each stage's best image every N evaluations into ``save_stages``;
            print_every: a progress line every N evaluations (with ``progress``).
        overwrite: replace existing outputs; resume: continue interrupted renders.
        bit_depth: 8 or 16 bits per channel (16: PNG, TIFF); jpeg_quality: 1–95.
        profile: output ICC profile (``srgb``, ``adobe-rgb``, ``display-p3`` or an ``.icc``
            file), converted into with LittleCMS (``intent``: ``perceptual`` or ``relative``;
            ``black_point_compensation``) and embedded; compression: TIFF ``none``, ``lzw`` or
            ``deflate``; bleed: e.g. ``3mm`` beyond the trim on every side (with
            ``print_size``); safe_margin: e.g. ``5mm``, also writes ``OUT.guide.png``
            (docs/usage.md, "Sending it to a print lab").
        max_input_pixels: refuse larger input images; 0: no limit.
        device: ``auto``, ``cuda``, ``mps`` or ``cpu`` (on a cluster, the actors' device).
        seed: makes each render repeatable (same seed, threads and kind of device).
        threads: torch's CPU threads (here: for this process; on a cluster: per actor).
        weights: VGG19 weights: ``caffe``, ``torchvision`` or a file path.
        cluster: ``None`` (render here), ``local``, ``auto`` or ``ray://HOST:PORT``
            (:func:`stylecascade.cluster.connect`; needs the ``cluster`` extra).
        actors: on a cluster, at most this many actors; cpus_per_actor: CPUs per actor.
        progress: the header, the time estimate and progress on stderr; ``None`` (the
            default): in a notebook or when stderr is a terminal, else nothing.
        yes: start a render estimated over 30 minutes on a CPU, its photos priced together
            (``None``: ask only in a notebook or with stderr on a terminal, as for
            :func:`render`; ``False``: always refuse it, as the command line does without
            ``--yes``).

    Returns:
        One :class:`~stylecascade.records.Outcome` per photo, in order (``failed`` ones carry
        the one-line message).

    Raises:
        ArgumentTypeError: an argument not of its annotated type, as for :func:`render`.
        ArgumentError, UsageError: bad photos, paintings, preset, pattern or folder.
        TooLong: (an ``ArgumentError``) over 30 minutes on a CPU without ``yes``.
        WeightsError: the weights cannot be loaded.
        ClusterError: Ray is missing, or the cluster cannot be reached or run an actor.
    """
    check_arguments(render_batch, locals())
    request = _request(
        locals(),
        actors=actors if cluster else None,  # as before: cluster options without a cluster
        cpus_per_actor=cpus_per_actor if cluster else None,  # are not an error in Python
        photos=[Path(p) for p in photos],
        out_dir=Path(out_dir),
        quiet=not (progress_by_default() if progress is None else progress),
        yes=_yes(yes),
    )
    return launch(request, Console(stderr=True))
