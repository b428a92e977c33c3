"""stylecascade: coarse-to-fine neural style transfer for print-resolution images.

``stylecascade`` (this folder, ``pipeline/``) orchestrates: command line, presets, image I/O,
weights and the stage runner. ``stylecascade.stages`` (``stages/``) holds the maths: VGG19
features, losses, optimizers, resampling, colour preservation and style blending.
"""

from importlib import metadata

try:
    __version__ = metadata.version("stylecascade")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
