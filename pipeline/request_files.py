"""The files a request names, checked before torch is imported and before any folder is made
(:func:`stylecascade.launch.checked_inputs`): the weights, the preset file, the output's
format, options and place under the write rule (:mod:`stylecascade.files`), the ``--name``
pattern, the folders. What needs an image read (sizes, stage images, masks) the job checks
(:class:`stylecascade.job.CheckedJob`), still before any folder is made. Torch-free: a usage
error here answers in a fraction of a second.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .choices import SOURCES
from .files import check_folder
from .naming import check_pattern, check_weights_spec, checkpoint_folder, manifest_path
from .output import check_options, check_output, options_of
from .write_checks import check_outputs

if TYPE_CHECKING:
    from .request import RenderRequest


def other_inputs(request: RenderRequest) -> tuple[Path, ...]:
    """The run's input files beside the photos and the preset's own files (paintings, masks,
    init image): the preset file (YAML, or a render's manifest) and a weights file. An output
    never replaces any of them (``job.RenderJob.inputs``)."""
    preset, weights = request.inputs.preset, request.compute.weights
    found = []
    if isinstance(preset, (str, os.PathLike)) and Path(preset).is_file():
        found.append(Path(preset))
    if isinstance(weights, (str, os.PathLike)) and str(weights) not in SOURCES:
        found.append(Path(weights).expanduser())
    return tuple(found)


def _named_inputs(request: RenderRequest, photos: Sequence[Path]) -> list[Path]:
    """Every input file the request names itself: photos, paintings and masks given as
    paths, the init image and :func:`other_inputs`."""
    given = [*(request.inputs.styles or ()), *(request.inputs.masks or ())]
    given.append(request.look.init_image)
    paths = [Path(p) for p in given if isinstance(p, (str, os.PathLike))]
    return [*photos, *paths, *other_inputs(request)]


def check_request_files(request: RenderRequest, photos: Sequence[Path]) -> None:
    """Every check of the files a request names that reads no image and needs no torch: the
    weights spec, the preset file (each field against its bounds), the output's format and
    options, a single output's place (a link, a device, an input, a folder in the way: the
    write rule), the ``--name`` pattern, and that each folder to create can be (none is).

    Raises:
        ArgumentError, UsageError, PresetError: the first problem, naming its field.
    """
    from .preset_files import load_preset

    check_weights_spec(request.compute.weights)
    if isinstance(request.inputs.preset, (str, os.PathLike)):
        load_preset(request.inputs.preset)  # a bad field (lr: 1e30) before any work
    options, output = options_of(request.fields()), request.outputs.output
    if output is not None and not request.is_batch:
        output = Path(output)
        check_output(output, options)
        check_outputs(
            [output, manifest_path(output)],
            _named_inputs(request, photos),
            [checkpoint_folder(output)],
        )
    else:
        check_options(options)
    if request.is_batch:
        check_pattern(request.batch.name)
        if request.batch.out_dir is not None:
            check_folder(Path(request.batch.out_dir), "out_dir")
    if request.outputs.save_stages is not None:
        check_folder(Path(request.outputs.save_stages), "save_stages")
