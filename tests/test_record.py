"""Every option declared once: the record (``stylecascade.record``) is the one list of a
render's fields, and every surface — the command line, the request, ``render``,
``render_batch``, the studio's tries, ``Preset.resolved`` — has each of its fields under the
same name, with the same default. A surface that lacks a field fails here."""

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
import typer
from stylecascade import options, record
from stylecascade.api import render, render_batch
from stylecascade.cli import app
from stylecascade.errors import ArgumentError
from stylecascade.record import PARTS, knob_specs, spec_of
from stylecascade.request import RenderRequest
from stylecascade.studio.work import TrySettings

ROOT = Path(__file__).resolve().parent.parent

FIELDS = {f.name: f for part in PARTS.values() for f in dataclasses.fields(part)}
API_DEFAULTS = {"yes": None}
"""Where the Python API's default differs on purpose: ``yes=None`` asks only where someone can
answer (a notebook, a terminal); a script starts a long render unasked."""


def _command_params(name: str) -> dict[str, object]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params if p.name != "help"}


def test_render_takes_every_field_of_the_record_and_nothing_else():
    params = _command_params("render")
    assert set(params) - {"original_colors"} == set(FIELDS)
    for name, f in FIELDS.items():
        spec = spec_of(f)
        shown = params[name].opts if spec.flags else [spec.metavar]  # type: ignore[attr-defined]
        declared = [flag.split("/")[0] for flag in spec.flags] or [spec.metavar]  # --a/--no-a
        assert declared == list(shown), name


def test_the_request_holds_every_field_in_one_part():
    assert list(RenderRequest().fields()) == list(FIELDS)
    request = RenderRequest.of(style_weight=2.0, out_dir="o", tile_size=64, quiet=True)
    assert (request.look.style_weight, request.batch.out_dir) == (2.0, "o")
    assert (request.compute.tile_size, request.outputs.quiet) == (64, True)
    with pytest.raises(TypeError, match="no field style_wieght"):
        RenderRequest.of(style_wieght=2.0)


@pytest.mark.parametrize(
    ("function", "left_out"),
    [
        (render_batch, {"quiet"}),  # progress= says it
        (render, {"photos", "output", "save_stages", "save_every", "print_every", "overwrite",
                  "resume", "bit_depth", "jpeg_quality", "quiet", "yes", "out_dir", "name",
                  "profile", "intent", "black_point_compensation", "compression", "bleed",
                  "safe_margin",
                  "max_input_pixels", "threads"}),
    ],
)  # fmt: skip
def test_the_python_api_has_each_field_with_the_records_default(function, left_out):
    params = inspect.signature(function).parameters
    if function is render_batch:
        left_out = left_out | {"output"}  # one output per photo: out_dir and name
    for name, f in FIELDS.items():
        if name in left_out:
            continue
        assert name in params, f"{function.__name__}() has no {name}="
        default = params[name].default
        if default is not inspect.Parameter.empty and name not in ("photos", "out_dir"):
            assert default == API_DEFAULTS.get(name, f.default), name


def test_the_studio_offers_the_fields_the_record_marks():
    marked = {name for name, f in FIELDS.items() if spec_of(f).studio}
    assert marked <= set(TrySettings.model_fields)
    assert "style_loss" in marked  # once the studio's own knob, now everyone's


def test_preset_resolved_applies_every_knob_by_name(tiny_preset):
    knobs = list(knob_specs())
    assert {"style_weight", "style_loss", "tile_size", "color"} <= set(knobs)
    assert tiny_preset.resolved(**dict.fromkeys(knobs)) == tiny_preset.resolved()
    look = tiny_preset.resolved(style_loss="w2", style_weight=2.0, tile_size=0)
    assert {s.style_loss for s in look.stages} == {"w2"}
    assert [s.style_weight for s in look.stages] == [2 * s.style_weight for s in tiny_preset.stages]
    with pytest.raises(ArgumentError, match="^style_loss must be one of gram, w2, swd"):
        tiny_preset.resolved(style_loss="L2")
    with pytest.raises(TypeError):
        tiny_preset.resolved(dpi=300.0)  # no preset target


def test_a_bound_is_checked_from_the_record(tmp_path):
    request = RenderRequest.of(photos=[tmp_path], out_dir=tmp_path, cluster="local", actors=0)
    with pytest.raises(ArgumentError, match="^actors must be ≥ 1; got 0$"):
        request.check()


def test_flags_are_the_records():
    assert [options.flag_of(n) for n in ("photos", "output", "blend_weights", "style_loss")] == [
        "CONTENT", "-o", "--blend-weight", "--style-loss",
    ]  # fmt: skip


def _strings(path: Path) -> list[str]:
    """The string constants of a module's code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = {
        id(node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }  # fmt: skip
    return [
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]  # fmt: skip


EDGES = {"cli.py", "cli_inspect.py", "cli_more.py", "cliapp.py", "options.py", "record.py",
         "api.py", "__main__.py", "helptext.py"}  # fmt: skip
"""The modules that word messages for a user (flags, argument names); the studio's page is an
edge of its own (``pipeline/studio``)."""


def test_no_module_below_the_edges_spells_a_flag_of_the_record():
    flags = {flag for f in FIELDS.values() for flag in spec_of(f).flags if flag.startswith("--")}
    below = [p for p in (ROOT / "pipeline").glob("*.py") if p.name not in EDGES]
    spelled = {}
    for path in [*below, *(ROOT / "stages").glob("*.py")]:
        for text in _strings(path):
            found = {f for f in flags if f"{f} " in f"{text} " or f"{f}=" in text}
            if found:
                spelled.setdefault(path.name, set()).update(found)
    assert not spelled, f"flags spelled below the edges: {spelled}"


def test_the_record_is_free_of_torch():
    source = Path(record.__file__).read_text()
    assert "torch" not in {n.split(".")[0] for n in _imports(source)}


def _imports(source: str) -> list[str]:
    return [
        alias.name for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import) for alias in node.names
    ]  # fmt: skip
