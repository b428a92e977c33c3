"""Issue 36, classes 5 and 6. The write rule (``stylecascade.files``): every file the project
writes is a regular file or nothing (no link followed, never a device node or a pipe), never an
input of the same run, never over a file without ``--overwrite``, and one render locks every
file it writes. And a rerun is "the same render, kept" only when every option that changes the
written files is the same (``job.written_options``, generated from the record)."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest
from conftest import TINY_PRESET, render_cli
from filelock import Timeout
from PIL import Image
from stylecascade.cli import app
from stylecascade.errors import UsageError
from stylecascade.files import atomic_write, output_lock
from stylecascade.record import Outputs
from typer.testing import CliRunner


def _one_error(result, *fragments, code=2):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def _special(path: Path, kind: str) -> int:
    """Make a FIFO or a character device (as /dev/null is) at ``path``; its mode's type."""
    if kind == "fifo":
        os.mkfifo(path)
        return stat.S_IFIFO
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return stat.S_IFCHR


# class 5: a regular file or nothing


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_weights_export_never_replaces_a_device_node_or_a_pipe(tmp_path, kind):
    """``weights export --compact /dev/null --overwrite`` replaced the device node with a
    regular file (here a node of our own, not the system's)."""
    target = tmp_path / "node"
    mode = _special(target, kind)
    result = CliRunner().invoke(app, ["weights", "export", "--compact", str(target), "--overwrite"])
    _one_error(result, "is not a regular file", "--compact")
    assert stat.S_IFMT(os.lstat(target).st_mode) == mode


def test_a_render_output_that_is_a_pipe_is_refused(tmp_path, photos, tiny_preset_file, no_network):
    out = tmp_path / "o.png"
    _special(out, "fifo")
    result = render_cli(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out, "-q",
                        "--overwrite")  # fmt: skip
    _one_error(result, "is not a regular file")
    assert stat.S_ISFIFO(os.lstat(out).st_mode)


def test_a_checkpoint_folder_that_is_a_link_is_never_written_through(
    tmp_path, photos, tiny_preset_file
):
    """``x.png.checkpoint`` linked to another folder made ``--overwrite`` write there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    out = tmp_path / "out" / "x.png"
    out.parent.mkdir()
    link = out.parent / "x.png.checkpoint"
    link.symlink_to(elsewhere, target_is_directory=True)
    result = render_cli(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out, "-q",
                        "--overwrite")  # fmt: skip
    _one_error(result, "x.png.checkpoint", "not a folder of its own")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert link.is_symlink() and not out.exists()


@pytest.mark.parametrize("name", ["x.png", "x.json", "x.stage1.32x24.png"])
def test_a_file_to_write_that_is_a_link_is_refused_and_kept(
    tmp_path, photos, tiny_preset_file, no_network, name
):
    """The image, its manifest, a stage image: each is written as a regular file or not at
    all; a link in its place is neither followed nor replaced."""
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    result = render_cli(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out / "x.png",
                        "--save-stages", out, "-q", "--overwrite")  # fmt: skip
    _one_error(result, name, "is a symbolic link")
    assert (out / name).is_symlink() and victim.read_text() == "mine"


def test_an_output_never_replaces_the_weights_it_reads(tmp_path, photos, tiny_preset_file):
    """``--weights W.png -o W.png --overwrite`` overwrote the weights the render read; refused
    before torch is imported (no weights are loaded)."""
    weights = tmp_path / "W.png"
    weights.write_bytes(b"the weights")
    result = render_cli(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", weights,
                        "--weights", weights, "-q", "--overwrite")  # fmt: skip
    _one_error(result, "is an input of this render", "W.png")
    assert weights.read_bytes() == b"the weights"


def test_weights_export_never_replaces_the_weights_it_reads(tmp_path):
    weights = tmp_path / "W.pt"
    weights.write_bytes(b"the weights")
    result = CliRunner().invoke(
        app,
        ["weights", "export", "--weights", str(weights), "--compact", str(weights),
         "--overwrite"],
    )  # fmt: skip
    _one_error(result, "is an input of this command", "--compact")
    assert weights.read_bytes() == b"the weights"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One finished tiny render: ``(args, out)`` (the command line, the output ``o.png``)."""
    folder = tmp_path_factory.mktemp("rendered")
    for name in ("tubingen", "starry_night"):
        with Image.open(Path(__file__).parent.parent / "examples" / f"{name}.jpg") as img:
            img.thumbnail((160, 160))
            img.save(folder / f"{name}.png")
    preset = folder / "tiny.yaml"
    preset.write_text(TINY_PRESET, encoding="utf-8")
    out = folder / "out" / "o.png"
    args = [folder / "tubingen.png", "-s", folder / "starry_night.png", "-p", preset, "-o", out]
    result = render_cli(*args, "-q")
    assert result.exit_code == 0, result.output
    return args, out


def test_the_manifest_never_replaces_the_preset_it_was_read_from(rendered, no_network):
    """Another instance of the class: ``--preset out/o.json -o out/o.png --overwrite`` wrote
    the new manifest over the preset the render was reading."""
    args, out = rendered
    manifest = out.with_suffix(".json")
    before = manifest.read_bytes()
    args = [*args[:3], "-p", manifest, "-o", out]
    _one_error(render_cli(*args, "-q", "--overwrite"), "is an input of this render", "o.json")
    assert manifest.read_bytes() == before


def test_presets_save_never_writes_over_the_file_it_reads(tmp_path, monkeypatch):
    """``presets save mine --from .../mine.yaml --overwrite`` rewrote its own source (its
    comments lost)."""
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path))
    saved = tmp_path / "presets" / "mine.yaml"
    saved.parent.mkdir()
    saved.write_text(TINY_PRESET + "# my notes\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["presets", "save", "mine", "--from", str(saved), "--overwrite"]
    )
    _one_error(result, "is an input of this command", "mine.yaml")
    assert saved.read_text(encoding="utf-8").endswith("# my notes\n")


def test_a_studio_upload_never_goes_through_a_linked_folder(tmp_path):
    from stylecascade.studio.folder import StudioFolder

    root, out, elsewhere = (tmp_path / n for n in ("root", "out", "elsewhere"))
    for folder in (root, out, elsewhere):
        folder.mkdir()
    (out / "uploads").symlink_to(elsewhere, target_is_directory=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(UsageError, match="not a folder of its own"):
        StudioFolder(root, out).save_upload("a.png", (tmp_path / "a.png").read_bytes())
    assert list(elsewhere.iterdir()) == []


def test_a_write_that_must_not_replace_refuses_a_file_there_atomically(tmp_path):
    """``replace=False`` (uploads, a saved preset or an export without ``--overwrite``):
    created only if nothing has the name, checked at the rename itself."""
    path = tmp_path / "taken.png"
    path.write_bytes(b"first")
    with pytest.raises(UsageError, match="already exists"):
        atomic_write(path, lambda tmp: tmp.write_bytes(b"second"), replace=False)
    assert path.read_bytes() == b"first" and sorted(tmp_path.iterdir()) == [path]
    atomic_write(tmp_path / "new.png", lambda tmp: tmp.write_bytes(b"new"), replace=False)
    assert (tmp_path / "new.png").read_bytes() == b"new"


@pytest.mark.parametrize("shared", ["manifest", "stage images"])
def test_renders_that_share_a_file_take_one_lock(
    tmp_path, photos, tiny_preset_file, no_network, shared
):
    """Two renders at once to ``man/x.png`` and ``man/x.jpg`` both wrote ``man/x.json``: the
    lock covered the image, not the manifest it shares (nor the stage images)."""
    folder, stages = tmp_path / "man", tmp_path / "stages"
    folder.mkdir()
    first = folder / "x.png" if shared == "manifest" else stages / "x.png"
    out = folder / "x.jpg" if shared == "manifest" else tmp_path / "other" / "x.png"
    with output_lock(first):  # the first render runs
        result = render_cli(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out,
                            "--save-stages", stages, "-q")  # fmt: skip
    _one_error(result, "is being rendered by another process")
    assert not out.with_suffix(".json").exists() and not out.exists()


def test_one_render_lock_covers_every_spelling_and_stem(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path / "home"))
    with output_lock(tmp_path / "x.png"):
        for other in ("x.jpg", "x.json", "sub/../x.tif"):
            with pytest.raises(Timeout):
                output_lock(tmp_path / other).acquire()
        with output_lock(tmp_path / "y.png"):  # another stem: free
            pass


# class 6: a rerun keeps only the same files

CHANGES = {
    "bit_depth": ["--bit-depth", "16"],
    "jpeg_quality": ["--jpeg-quality", "80"],
    "dpi": ["--dpi", "150"],
    "profile": ["--profile", "adobe-rgb"],
    "intent": ["--intent", "relative"],
    "black_point_compensation": ["--no-black-point"],
    "compression": ["--compression", "none"],
    "print_size": ["--print-size", "0.3x0.225in"],
    "bleed": ["--print-size", "0.3x0.225in", "--bleed", "1mm"],
    "safe_margin": ["--print-size", "0.3x0.225in", "--safe-margin", "1mm"],
    "save_stages": ["--save-stages", "{out}/stages"],
    "save_every": ["--save-stages", "{out}/stages", "--save-every", "2"],
}
"""A rerun with each written option changed (the option's field: its flags)."""


def test_every_output_option_is_in_the_fingerprint_or_said_to_change_nothing():
    """The list is generated from the record's ``Outputs`` (and the writer's options): each
    field is written (:data:`CHANGES` reruns it) or in ``UNWRITTEN`` with why."""
    from stylecascade.job import UNWRITTEN, RenderJob, written_options

    written = written_options(RenderJob(content=Path("p.png"), output=Path("o.png")))
    assert set(written) == set(CHANGES)
    outputs = {f.name for f in dataclasses.fields(Outputs)}
    assert outputs <= set(written) | set(UNWRITTEN) and not set(written) & set(UNWRITTEN)
    assert all(len(why) > 10 for why in UNWRITTEN.values())


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_rerun_with_another_output_option_is_not_kept_as_done(rendered, no_network, field):
    """A rerun with another ``--bit-depth``, ``--dpi``, ``--save-stages``… answered "kept …
    done before", exit 0, the files as before: it is another render's output, refused
    without ``--overwrite``."""
    args, out = rendered
    before = out.read_bytes()
    change = [a.replace("{out}", str(out.parent)) for a in CHANGES[field]]
    result = render_cli(*args, *change)
    _one_error(result, "already exists", "--overwrite")
    assert out.read_bytes() == before and not (out.parent / "stages").exists()


def test_a_rerun_with_only_console_options_is_the_same_render(rendered):
    args, out = rendered
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    result = render_cli(*args, "--print-every", "3", "--yes")
    assert result.exit_code == 0 and "this render was done before" in result.output
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before


def test_a_rerun_with_another_bit_depth_and_overwrite_rewrites(rendered, tmp_path):
    args, out = rendered
    copy = tmp_path / "o.png"
    args = [*args[:-1], copy]
    assert render_cli(*args, "-q").exit_code == 0
    result = render_cli(*args, "-q", "--bit-depth", "16", "--overwrite")
    assert result.exit_code == 0, result.output
    assert copy.read_bytes()[24] == 16  # the PNG header's bit depth
