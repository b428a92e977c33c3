"""stylecascade: coarse-to-fine neural style transfer for print-resolution images.

The public Python API (see README, "Python API")::

    from stylecascade import render
    result = render("photo.jpg", "painting.jpg", preset="draft", size=256)
    result.image.save("styled.png")

``stylecascade`` (this folder, ``pipeline/``) holds configuration, image I/O, the command line
and the API; ``stylecascade.stages`` (``stages/``) holds the maths and the cascade. The API's
names are imported on first use, so ``import stylecascade`` alone does not load torch.
"""

from importlib import import_module, metadata
from typing import Any

try:
    __version__ = metadata.version("stylecascade")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Preset",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "StyleCascadeError",
    "__version__",
    "launch",
    "load_preset",
    "render",
    "render_batch",
]

_HOMES = {
    "render": "api",
    "render_batch": "api",
    "Renderer": "renderer",
    "RenderResult": "renderer",
    "RenderRequest": "request",
    "launch": "launch",
    "Preset": "preset",
    "load_preset": "preset_files",
    "StyleCascadeError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
