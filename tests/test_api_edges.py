"""The Python API's edges (issue 36, class 9): every argument of :func:`render` and
:func:`render_batch` is checked by its annotated type, strictly, in one place
(``request.check_arguments``) — no text taken as a list, no mapping as a list, no ``"no"`` as
``False``, no empty text, no image of 0 px — and refused with the project's error naming the
argument, never a raw ``TypeError`` or ``ZeroDivisionError`` from deep inside."""

import pytest
import torch
from conftest import EXAMPLES, RANDOM_PAINTING, RANDOM_PHOTO
from conftest import NetworkLoaded as Loaded
from PIL import Image
from stylecascade import render, render_batch
from stylecascade.errors import ArgumentError, StyleCascadeError

pytestmark = pytest.mark.usefixtures("stop_at_network")
PHOTO, PAINTING = RANDOM_PHOTO, RANDOM_PAINTING
FILE = str(EXAMPLES / "tubingen.jpg")
STYLE = str(EXAMPLES / "starry_night.jpg")
EMPTY = Image.new("RGB", (0, 0))

RENDER = [
    ("styles", {"styles": 5}),
    ("styles", {"styles": {"a": 1}}),
    ("styles", {"styles": b"ab"}),
    ("styles", {"styles": [PAINTING, EMPTY]}),
    ("content", {"content": EMPTY}),
    ("content", {"content": Image.new("RGB", (5, 0))}),
    ("content", {"content": None}),
    ("content", {"content": torch.zeros(1, 3, 0, 0)}),  # no pixels: refused, never priced
    ("preset", {"preset": ""}),
    ("preset", {"preset": 5}),
    ("masks", {"masks": "mask.png"}),
    ("blend_weights", {"blend_weights": {"a": 1.0}}),
    ("blend_weights", {"blend_weights": "1"}),
    ("color", {"color": ""}),
    ("device", {"device": ""}),
    ("init_image", {"init_image": ""}),
    ("weights", {"weights": ""}),
    ("size", {"size": True}),
    ("seed", {"seed": 1.0}),
    ("progress", {"progress": "no"}),
    ("progress", {"progress": object()}),
    ("stop", {"stop": 5}),
]

BATCH = [
    ("photos", {"photos": None}),
    ("photos", {"photos": FILE}),  # a str: never its characters one by one
    ("photos", {"photos": {FILE: 1}}),
    ("photos", {"photos": [""]}),
    ("out_dir", {"out_dir": None}),
    ("out_dir", {"out_dir": ""}),
    ("styles", {"styles": Image.new("RGB", (8, 8))}),  # a batch reads paintings from files
    ("styles", {"styles": {"a": 1}}),  # never the key as a path
    ("styles", {"styles": [PAINTING]}),
    ("save_stages", {"save_stages": 5}),
    ("progress", {"progress": "no"}),
    ("progress", {"progress": 0}),
    ("yes", {"yes": "yes"}),
    ("overwrite", {"overwrite": 1}),
    ("name", {"name": ""}),
    ("preset", {"preset": ""}),
    ("cluster", {"cluster": ""}),
    ("profile", {"profile": ""}),
    ("jpeg_quality", {"jpeg_quality": 90.0}),
    ("device", {"device": 3}),
]


def _render(content=PHOTO, styles=PAINTING, **kwargs):
    return render(content, styles, **kwargs)


def _batch(photos=(FILE,), out_dir="out", styles=STYLE, **kwargs):
    return render_batch(photos, out_dir, styles, **kwargs)


@pytest.mark.parametrize(
    ("call", "argument", "kwargs"),
    [(_render, a, k) for a, k in RENDER] + [(_batch, a, k) for a, k in BATCH],
    ids=[f"render-{a}-{i}" for i, (a, _) in enumerate(RENDER)]
    + [f"batch-{a}-{i}" for i, (a, _) in enumerate(BATCH)],
)
def test_a_bad_argument_is_the_projects_error_naming_it(
    tmp_path, monkeypatch, call, argument, kwargs
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StyleCascadeError) as info:
        call(**kwargs)
    error = info.value
    assert isinstance(error, ArgumentError) and error.arguments[0] == argument, repr(error)
    assert isinstance(error, (TypeError, ValueError)) and "\n" not in str(error)
    assert str(error).startswith(argument), str(error)
    assert not list(tmp_path.iterdir()), "a refused call left files behind"


def test_the_messages_say_what_was_wrong():
    with pytest.raises(ArgumentError, match=r"^content takes no empty image; got a 0×0 px PIL"):
        render(EMPTY, PAINTING)
    with pytest.raises(ArgumentError, match=r"^preset takes no empty text; got ''$"):
        render(PHOTO, PAINTING, preset="")
    with pytest.raises(ArgumentError, match=r"^photos must be a list \(each a path"):
        render_batch(FILE, "out", STYLE)
    with pytest.raises(ArgumentError, match=r"^progress must be True or False or None; got 'no'"):
        render_batch([FILE], "out", STYLE, progress="no")


def test_good_arguments_still_pass_every_check(tmp_path):
    from pathlib import Path

    for call in (
        lambda: render(PHOTO, [PAINTING, Image.new("RGB", (8, 8))], progress=False),
        lambda: render(Path(FILE), STYLE, preset=Path(EXAMPLES.parent / "presets" / "draft.yaml")),
        lambda: render_batch((FILE,), tmp_path / "o", [Path(STYLE)], progress=False),
    ):
        with pytest.raises(Loaded):
            call()
