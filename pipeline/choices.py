"""Choices and limits the command line offers, kept free of torch so that ``--help`` and the
first checks of a command answer before torch is imported (the modules that use them import
them from here)."""

from .errors import ArgumentError

DEVICES = ("auto", "cuda", "mps", "cpu")
"""``--device`` values (``stylecascade.device.select_device``)."""

SOURCES = ("caffe", "torchvision")
"""Named VGG19 weight sources of ``--weights`` (``stylecascade.weights``); a file path is the
third kind."""

SEED_RANGE = 2**64
"""Seeds are 0 … 2⁶⁴ − 1, what ``torch.manual_seed`` takes; stage ``i`` draws with
``(seed + i) mod 2⁶⁴``."""


def check_seed(seed: int) -> None:
    """The one rule for ``--seed`` (and the API's ``seed``).

    Raises:
        UsageError: a seed outside 0 … 2⁶⁴ − 1.
    """
    if not 0 <= seed < SEED_RANGE:
        raise ArgumentError("seed", f"{{}} must be 0 … {SEED_RANGE - 1}; got {seed}")


MAX_ITERATIONS = 100_000
"""Largest evaluation cap of a stage (a 4096 px stage on a large GPU does about 2 per second);
also the longest period of ``--save-every`` and ``--print-every``."""
MAX_STYLE_SCALE = 8.0
"""Largest ``style_scale`` of a stage (the painting at 8× the stage's size)."""
MAX_THREADS = 1024
"""More CPU threads than any machine has cores (torch takes a C int)."""
MIN_DPI, MAX_DPI = 1.0, 65535.0
"""``--dpi`` bounds: a JPEG file stores whole dots per inch in 16 bits (PNG and TIFF store
more); under 1 DPI a file would say 0."""

MAX_INPUT_PIXELS = 200_000_000
"""Largest input image accepted by default (200 MP, e.g. 16 000 × 12 500 px): a guard against
decompression bombs, files of a few KB that decode to gigabytes. ``--max-input-pixels``
raises it."""
MAX_PIXEL_LIMIT = 2**40
"""Largest ``--max-input-pixels`` (a trillion px; a file's byte bound, 8 bytes a pixel, still
fits a read's size); 0 is no limit."""

OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
"""Output suffix → Pillow format name (``stylecascade.output`` writes 16-bit PNG and TIFF
itself)."""
DEFAULT_NAME = "{content}-{styles}.png"
"""A batch's output name pattern unless ``--name`` says otherwise (:mod:`stylecascade.naming`)."""
PROFILE_NAMES = ("srgb", "adobe-rgb", "display-p3")
"""Output ICC profiles by name (``stylecascade.profiles``); anything else is a path to an
``.icc``/``.icm`` file."""
INTENT_NAMES = ("perceptual", "relative")
"""Rendering intents of the profile conversion (relative: relative colorimetric)."""
COMPRESSION_NAMES = ("none", "lzw", "deflate")
"""TIFF compressions (all lossless; ``stylecascade.output``)."""
