"""Choices and limits the command line offers, kept free of torch so that ``--help`` and the
first checks of a command answer before torch is imported (the modules that use them import
them from here)."""

DEVICES = ("auto", "cuda", "mps", "cpu")
"""``--device`` values (``stylecascade.device.select_device``)."""

SOURCES = ("caffe", "torchvision")
"""Named VGG19 weight sources of ``--weights`` (``stylecascade.weights``); a file path is the
third kind."""

MAX_INPUT_PIXELS = 200_000_000
"""Largest input image accepted by default (200 MP, e.g. 16 000 × 12 500 px): a guard against
decompression bombs, files of a few KB that decode to gigabytes. ``--max-input-pixels``
raises it."""
