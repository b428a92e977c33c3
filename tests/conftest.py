"""Shared fixtures: a tiny random-weight VGG19 and small real images."""

from __future__ import annotations

import importlib
import secrets
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image
from stylecascade.images import load_image
from stylecascade.preset import Preset
from stylecascade.preset_files import parse_preset
from stylecascade.stages.resample import resize_long_edge
from stylecascade.stages.vgg import VGGFeatures, build_vgg19_features

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"
"""Where a new local Ray instance writes its authentication token when none is given."""

SLOW = (
    "test_cascade_quality.py",  # draft at 200 px with the real weights, scored
    "test_readme.py::test_readme_commands_run_in_order_and_again",  # README's commands, run
    "test_cli.py::test_render_end_to_end_with_real_weights",
    "test_cli.py::test_two_styles_and_luminance_end_to_end",
    "test_masks_cli.py::test_two_paintings_on_two_halves_end_to_end",
    "test_presets_batch.py::test_render_save_then_batch_a_folder_with_the_saved_preset",
    "test_studio.py::test_the_page_answers_while_a_render_runs",
    "test_studio_browser.py",  # headless Chromium
    "test_cluster.py",  # local Ray instances
    "test_cluster_tiles.py",
    "test_cluster_print.py",  # one print on a local Ray's actors, real weights
    "test_print_recipe.py::test_the_print_recipe_at_a_small_size_keeps_its_speckle_bound",
)
"""The tests marked ``slow`` (issue 37, friction 4), in this one list: a file name marks every
test in it, ``file::name`` one test (every parametrization of it). README's test command
leaves them out (``-m "not slow"``); CI (``.ci/run``) runs everything. They are the end-to-end
renders with the real VGG19 weights, the Ray cluster and the browser: together most of the
suite's time (``pytest --durations=0``)."""


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of :data:`SLOW` ``slow``.

    Raises:
        pytest.UsageError: an entry of :data:`SLOW` names a test its file does not have.
    """
    modules: dict[str, Any] = {}
    for item in items:
        file, name = item.path.name, getattr(item, "originalname", item.name)
        if file in SLOW or f"{file}::{name}" in SLOW:
            item.add_marker(pytest.mark.slow)
        if isinstance(item, pytest.Function):
            modules[file] = item.module
    named = [entry.split("::") for entry in SLOW if "::" in entry]
    missing = [f"{f}::{n}" for f, n in named if f in modules and not hasattr(modules[f], n)]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py SLOW names no such test: {missing}")


@pytest.fixture(scope="session", autouse=True)
def ray_token_in_the_environment():
    """Give the Ray instances the tests start a token in ``RAY_AUTH_TOKEN`` (as Ray's own
    tests do): without one, a new local instance writes ``~/.ray/auth_token`` into the real
    HOME. Token authentication stays on, as for users; at the end, the file is as it was."""
    before = RAY_TOKEN_FILE.stat().st_mtime_ns if RAY_TOKEN_FILE.exists() else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        patch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
        yield
    after = RAY_TOKEN_FILE.stat().st_mtime_ns if RAY_TOKEN_FILE.exists() else None
    assert after == before, f"the tests wrote {RAY_TOKEN_FILE}"


TINY_WIDTH = 1 / 16  # 4 … 32 channels instead of 64 … 512


@pytest.fixture(scope="session")
def tiny_trunk() -> torch.nn.Sequential:
    """VGG19's layers with 1/16 of its channels and seeded random weights."""
    torch.manual_seed(0)
    return build_vgg19_features(width=TINY_WIDTH)


@pytest.fixture(scope="session")
def tiny_extractor(tiny_trunk):
    """Factory: ``tiny_extractor(layers, pooling="avg")`` → :class:`VGGFeatures` on the tiny VGG."""

    def make(layers, pooling: str = "avg") -> VGGFeatures:
        return VGGFeatures(tiny_trunk, layers, pooling)

    return make


@pytest.fixture(scope="session")
def content_image() -> torch.Tensor:
    """The Tübingen photo at 64 px long edge, ``(1, 3, 48, 64)``."""
    return resize_long_edge(load_image(EXAMPLES / "tubingen.jpg", "content"), 64)


@pytest.fixture(scope="session")
def style_image() -> torch.Tensor:
    """The Starry Night at 64 px long edge, ``(1, 3, 40, 64)``."""
    return resize_long_edge(load_image(EXAMPLES / "starry_night.jpg", "style"), 64)


TINY_PRESET = """
description: two tiny stages for tests
model:
  pooling: avg
  content_layers: {relu4_2: 1}
  style_layers: {relu1_1: 1, relu2_1: 1, relu3_1: 1, relu4_1: 1, relu5_1: 1}
init: content
defaults:
  optimizer: lbfgs
  lr: 1.0
  content_weight: 1.0
  style_weight: 200.0
  tv_weight: 0.0
stages:
  - {size: 32, iterations: 8}
  - {size: 64, iterations: 6}
"""


def edited_tiny_preset(path: str, value: Any) -> dict[str, Any]:
    """The data of :data:`TINY_PRESET` with one field replaced (``path`` like
    ``stages.0.size``); ``value=...`` deletes the field."""
    data = yaml.safe_load(TINY_PRESET)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    key = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return data


@pytest.fixture
def tiny_preset() -> Preset:
    return parse_preset(TINY_PRESET, "tiny", "tiny.yaml")


@pytest.fixture
def tiny_preset_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_PRESET, encoding="utf-8")
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if a render gets as far as loading the network (the weights): for checks
    that must come before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the network was loaded before every cheap check was done")

    monkeypatch.setattr("stylecascade.renderer.load_network", refuse)


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if anything loads the weights (every check must come first)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the weights were loaded before every check was done")

    names = ("renderer.load_network", "renderer.load_weights", "weights.load_weights",
             "inspection.load_weights")  # fmt: skip
    for name in names:  # every module imported first: none binds ``refuse`` at its import
        importlib.import_module(f"stylecascade.{name.split('.')[0]}")
    for name in names:
        monkeypatch.setattr(f"stylecascade.{name}", refuse)


@pytest.fixture
def no_ray_address(monkeypatch):
    """``auto`` must not find a Ray of the machine's through the environment, nor Ray report
    usage statistics."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")


class NetworkLoaded(Exception):
    """Every check passed: the call went on to load the network (:func:`stop_at_network`)."""


@pytest.fixture
def stop_at_network(monkeypatch):
    """A render that passes every check raises :class:`NetworkLoaded` where it would load the
    network: for tests of what is refused before it, and what is not."""

    def refuse(*args, **kwargs):
        raise NetworkLoaded

    monkeypatch.setattr("stylecascade.renderer.load_network", refuse)


RANDOM_PHOTO = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
RANDOM_PAINTING = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def photos(tmp_path):
    """The example images shrunk to 160 px long edge, as files."""
    paths = []
    for name in ("tubingen.jpg", "starry_night.jpg", "the_scream.jpg"):
        with Image.open(EXAMPLES / name) as img:
            img.thumbnail((160, 160))
            img.save(tmp_path / name.replace(".jpg", ".png"))
        paths.append(tmp_path / name.replace(".jpg", ".png"))
    return paths


def render_cli(*args: Any) -> Any:
    """``stylecascade render ARGS`` in-process (typer's ``CliRunner``), each arg as text."""
    from stylecascade.cli import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, ["render", *map(str, args)])
