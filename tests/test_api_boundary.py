"""The Python API's boundary (issue 25.10): any value of any type for any argument ends in a
StyleCascadeError that is also a TypeError or ValueError and names the argument — never a raw
error from deep inside — or passes every check (the render then loads the network, which
these tests forbid)."""

import pytest
import torch
from conftest import RANDOM_PAINTING, RANDOM_PHOTO
from conftest import NetworkLoaded as Loaded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from stylecascade import render
from stylecascade.errors import ArgumentError, StyleCascadeError
from stylecascade.preset_files import load_preset

PHOTO, PAINTING = RANDOM_PHOTO, RANDOM_PAINTING

ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-2, 2), st.text(max_size=2)), max_size=3),
    st.sampled_from([object(), b"bytes", {"a": 1}, torch.zeros(2)]),
)
ARGUMENTS = (
    "preset", "blend_weights", "masks", "size", "print_size", "dpi", "color",
    "content_weight", "style_weight", "tv_weight", "device", "seed", "weights", "tile_size",
    "progress",
)  # fmt: skip


def _outcome(**kwargs):
    try:
        render(PHOTO, PAINTING, **kwargs)
    except Loaded:
        return None
    except StyleCascadeError as exc:
        return exc
    return None


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argument=st.sampled_from(ARGUMENTS), value=ANY)
def test_any_value_of_any_argument_is_checked_at_the_boundary(stop_at_network, argument, value):
    exc = _outcome(**{argument: value})
    if exc is not None:
        assert isinstance(exc, (TypeError, ValueError)), (argument, value, exc)
        assert "\n" not in str(exc)
        if isinstance(exc, ArgumentError):
            assert argument in exc.arguments or argument in {"preset", "weights"}, exc


@pytest.mark.parametrize(
    ("kwargs", "kind", "message"),
    [
        ({"size": "128"}, TypeError, "size must be an int or None; got '128'"),
        ({"seed": "abc"}, TypeError, "seed must be an int; got 'abc'"),
        ({"seed": 1.5}, TypeError, "seed must be an int; got 1.5"),
        ({"preset": 5}, TypeError, "preset must be a path (str or Path) or a Preset"),
        ({"progress": "yes"}, TypeError, "progress must be True or False or an observer or"),
    ],
)
def test_api_misuse_is_one_clear_error(stop_at_network, kwargs, kind, message):
    with pytest.raises(kind) as info:
        render(PHOTO, PAINTING, **kwargs)
    assert isinstance(info.value, StyleCascadeError) and message in str(info.value)


def test_bad_images_and_load_preset_none(stop_at_network, tmp_path):
    with pytest.raises(
        ValueError, match=r"content image: a tensor must be .* got torch.float32 \(3, 0, 64\)"
    ):
        render(torch.rand(3, 0, 64), PAINTING)
    path = tmp_path / "p.png"
    Image.new("RGB", (32, 32)).save(path)
    closed = Image.open(path)
    closed.close()
    with pytest.raises(ValueError, match="content image: cannot read the PIL image"):
        render(closed, PAINTING)
    with pytest.raises(TypeError, match="preset must be a name or a path; got NoneType"):
        load_preset(None)
