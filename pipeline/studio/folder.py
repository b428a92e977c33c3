"""The studio's folder: the photos and paintings it offers, and the one place it writes.

Inputs are the image files directly inside the folder and those uploaded from the page. The
page names files by their plain name only (no folders, no ``..``); everything the page causes
to be written goes into the output folder (uploads, drawn masks, prints), through the
project's one writer (:mod:`stylecascade.files`: a new regular file or nothing, never through
a link; the render job's flow for prints), in subfolders of its own (never links).
Saved presets go where ``presets save`` puts them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import naming
from ..choices import MAX_INPUT_PIXELS
from ..errors import UsageError
from ..files import atomic_write, make_folder, own_folder
from ..naming import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from ..preset import Preset

MAX_NAME = 120
"""Longest file name (characters) the page may give an upload."""
MAX_NAME_BYTES = 200
"""Longest file name in UTF-8 bytes (file systems allow 255; the writer's temporary and a
mask's ``-mask-N.png`` add to it)."""
UPLOADS, MASKS, PRINTS = "uploads", "masks", "prints"
"""The output folder's subfolders: uploaded images, masks drawn on the page, print renders."""


def name_problem(name: str) -> str | None:
    """Why ``name`` is no name the page may use, else ``None``: the project's name rule
    (:func:`stylecascade.naming.name_problem`: printable, no bidi controls, no spaces around,
    no folder part, not hidden) in at most :data:`MAX_NAME` characters and
    :data:`MAX_NAME_BYTES` UTF-8 bytes: a name any file system here takes and any answer can
    quote."""
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; at most {MAX_NAME}"
    return naming.name_problem(name, MAX_NAME_BYTES)


def printable(name: str) -> bool:
    """Whether ``name`` keeps the name rule (:func:`name_problem`)."""
    return name_problem(name) is None


def plain_name(name: str, what: str = "file name", taken: Iterable[str] = ()) -> str:
    """``name`` if it is a plain image file name: the name rule (:func:`name_problem`; no
    look-alike of a ``taken`` name, :func:`~stylecascade.naming.check_name`), ending in one of
    :data:`~stylecascade.naming.IMAGE_SUFFIXES`.

    Raises:
        UsageError: any other name (``../x.png``, ``a/b.png``, ``.png``, ``x.exe``, 70 emoji,
            a NUL, U+202E, ``Red.png`` beside ``red.png``), saying what is wrong with it.
    """
    problem = name_problem(name)
    if problem is None and Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        problem = "is no image file's name"
    if problem is None:
        return naming.check_name(name, what, taken=taken, limit=MAX_NAME_BYTES)
    raise UsageError(
        f"{what} {name[:MAX_NAME]!r}: {problem}; use a plain image file name without folders "
        f"(at most {MAX_NAME} characters, {MAX_NAME_BYTES} bytes), ending in "
        f"{', '.join(IMAGE_SUFFIXES)}"
    )


def _images(folder: Path) -> dict[str, Path]:
    """The image files directly inside ``folder`` by name (none if it is missing)."""
    if not folder.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and printable(p.name)
        and not p.name.startswith(".")
        and p.suffix.lower() in IMAGE_SUFFIXES
    }


def preset_name(name: str) -> str:
    """``name`` if it names a bundled or saved preset exactly: the page reads presets by name
    only, never a path (``/etc/passwd``, ``secret.txt``).

    Raises:
        UsageError: any other name (the known names listed).
    """
    from ..preset_files import bundled_presets, user_presets

    known = [*bundled_presets(), *user_presets()]
    if name not in known:
        raise UsageError(f"no preset {name[:MAX_NAME]!r}; the studio offers: {', '.join(known)}")
    return name


def named_preset(name: str) -> Preset:
    """The bundled or saved preset ``name`` (:func:`preset_name`); a file that cannot be read
    is reported without quoting it (what ``presets validate NAME`` shows in full).

    Raises:
        UsageError: an unknown name.
        PresetError: a preset that cannot be read or is invalid (its name, never its text).
    """
    from ..preset import PresetError
    from ..preset_files import load_preset

    try:
        return load_preset(preset_name(name))
    except PresetError:
        raise PresetError(
            f"preset {name!r} cannot be used; 'stylecascade presets validate {name}' says why"
        ) from None


@dataclass(frozen=True)
class StudioFolder:
    """The folder the studio was started on and its output folder.

    Attributes:
        root: the photos and paintings the studio offers (read only).
        out: where the page's uploads, masks and prints go (created on first write).
    """

    root: Path
    out: Path

    def inputs(self) -> dict[str, Path]:
        """Every image the page may pick, by name: the folder's, then the uploads (an upload
        never shadows a file of the folder: :meth:`save_upload` refuses the name)."""
        return {**_images(self.out / UPLOADS), **_images(self.root)}

    def image(self, name: str) -> Path:
        """The input image called ``name``.

        Raises:
            UsageError: no such input (a path, or a name not offered).
        """
        found = self.inputs().get(plain_name(name, "image"))
        if found is None:
            raise UsageError(f"image {name!r}: no such photo or painting in {self.root}")
        return found

    def mask(self, name: str) -> Path:
        """The mask called ``name`` (drawn or uploaded on the page).

        Raises:
            UsageError: no such mask.
        """
        found = _images(self.out / MASKS).get(plain_name(name, "mask"))
        if found is None:
            raise UsageError(f"mask {name!r}: no such mask in {self.out / MASKS}")
        return found

    def save_upload(self, name: str, data: bytes) -> Path:
        """Write an uploaded image into ``out/uploads`` once it decodes as an image.

        Raises:
            UsageError: a name that is not plain or is taken, or bytes that are not an image
                (the message :func:`~stylecascade.images.read_image_bytes` gives).
            ArgumentError: the output folder cannot be created.
            OSError: it cannot be written.
        """
        inputs = self.inputs()
        if plain_name(name, "image", taken=inputs) in inputs:
            raise UsageError(f"image {name!r} is already in the studio; rename the file")
        return self._write(UPLOADS, name, data, "upload")

    def save_mask(self, painting: str, data: bytes) -> Path:
        """Write a mask for ``painting`` into ``out/masks`` under a new name
        (``PAINTING-mask-N.png``), once it decodes as an image.

        Raises:
            UsageError: an unknown painting, or bytes that are not an image.
            OSError: it cannot be written.
        """
        stem = Path(self.image(painting).name).stem
        taken = _images(self.out / MASKS)
        name = next(
            f"{stem}-mask-{n}.png"
            for n in itertools.count(1)
            if f"{stem}-mask-{n}.png" not in taken
        )
        return self._write(MASKS, name, data, "mask")

    def _write(self, sub: str, name: str, data: bytes, role: str) -> Path:
        from ..images import read_image_bytes

        read_image_bytes(data, name, role, MAX_INPUT_PIXELS)  # refuses what is no image
        path = self._folder(sub) / name
        # the one writer: a new regular file or nothing (never over a file, through a link)
        atomic_write(path, lambda tmp: tmp.write_bytes(data), replace=False, argument=None)
        return path

    def _folder(self, sub: str) -> Path:
        """``out/sub``, made if missing: a folder of the studio's own, never a link to another
        (:func:`~stylecascade.files.own_folder`).

        Raises:
            ArgumentError: the output folder cannot be made, or a link or file is in its place.
        """
        make_folder(self.out, "out_dir")
        own_folder(self.out / sub, "out_dir")
        return self.out / sub

    def print_path(self, photo: str, job: int, long_edge: int, suffix: str) -> Path:
        """Where a print of try ``job`` goes: ``out/prints/PHOTO-tryJOB-EDGEpx.SUFFIX`` (the
        same print again resumes its checkpoint)."""
        folder = self._folder(PRINTS)
        return folder / f"{Path(photo).stem}-try{job}-{long_edge}px{suffix}"
