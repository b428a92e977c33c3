"""Nothing is lost (issue 14, "Data loss"): one render per output at a time, outputs never over
inputs, stage images of other renders kept on --resume, and an image whose manifest was never
written finished by --resume."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from filelock import Timeout
from PIL import Image
from stylecascade.checkpoint import Checkpoint
from stylecascade.cli import app
from stylecascade.errors import UsageError
from stylecascade.files import output_lock
from stylecascade.job import CheckedJob, RenderJob
from stylecascade.preset_files import load_preset
from stylecascade.renderer import Renderer
from typer.testing import CliRunner


def _render(*args):
    return CliRunner().invoke(app, ["render", *map(str, args)])


def _one_error(result, *fragments, code=2):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def renderer(tiny_preset, photos):
    return Renderer(tiny_preset.resolved(styles=[photos[1]]), device="cpu")


def test_a_second_render_of_the_same_output_is_refused_while_the_first_runs(
    tmp_path, photos, tiny_preset_file
):
    out = tmp_path / "same.png"
    with output_lock(out):  # the first render holds it
        result = _render(photos[0], "-s", photos[2], "-p", tiny_preset_file, "-o", out, "-q")
    _one_error(result, f"output {out} is being rendered by another process", "locks")
    assert not out.exists()


def test_every_spelling_of_an_output_takes_the_same_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path / "home"))
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    spellings = [Path("link/o.png"), Path("real/../real/o.png"), tmp_path / "real" / "o.png"]
    with output_lock(tmp_path / "real" / "o.png"):
        for spelling in spellings:
            with pytest.raises(Timeout):
                output_lock(spelling).acquire()
        held = subprocess.run(  # another process is refused too
            [sys.executable, "-c", "import sys; from pathlib import Path; "
             "from stylecascade.files import output_lock; output_lock(Path(sys.argv[1])).acquire()",
             "link/o.png"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert held.returncode == 1 and "Timeout" in held.stderr
    with output_lock(Path("link/o.png")):  # released: free again
        pass
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == []  # nothing beside it


def test_a_render_leaves_no_lock_beside_its_output(tmp_path, photos, tiny_preset_file):
    out = tmp_path / "out" / "o.png"
    result = _render(photos[0], "-s", photos[2], "-p", tiny_preset_file, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.json", "o.png"]


def test_an_output_written_meanwhile_is_not_replaced(tmp_path, photos, renderer):
    out = tmp_path / "same.png"
    render = CheckedJob(RenderJob(content=photos[0], output=out), renderer)  # checked: free
    out.write_bytes(b"the other render's image")  # …then another render finished first
    with pytest.raises(UsageError, match="same.png already exists; pass overwrite"):
        render.run()
    assert out.read_bytes() == b"the other render's image"


@pytest.mark.parametrize("which", ["content", "style", "link to the content"])
def test_an_output_is_never_one_of_the_inputs(tmp_path, photos, tiny_preset_file, which):
    target = {"content": photos[0], "style": photos[1]}.get(which)
    if target is None:
        target = tmp_path / "link.png"
        target.symlink_to(photos[0])
    before = photos[0].read_bytes(), photos[1].read_bytes()
    result = _render(
        photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", target, "--overwrite", "-q"
    )
    _one_error(result, f"output {target} is an input of this render", "never replaces an input")
    assert (photos[0].read_bytes(), photos[1].read_bytes()) == before


def test_a_batch_into_its_own_folder_never_replaces_a_photo(tmp_path, photos, tiny_preset_file):
    before = photos[0].read_bytes()
    result = _render(
        photos[0], "-s", photos[1], "-p", tiny_preset_file, "--out-dir", tmp_path,
        "--name", "{content}.png", "--overwrite", "-q",
    )  # fmt: skip
    assert result.exit_code == 2 and "is an input of this render" in result.output
    assert photos[0].read_bytes() == before


@pytest.mark.parametrize(
    ("names", "pattern"), [(("a", "za"), "z{content}.png"), (("a", "a-x"), "{content}-x.png")]
)
def test_a_batch_never_replaces_another_photo_of_the_batch(
    tmp_path, photos, tiny_preset_file, no_network, names, pattern
):
    """Issue 25.1: a.png's output named za.png replaced the photo za.png, then rendered it."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in names:
        shutil.copy(photos[0], folder / f"{name}.png")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = _render(
        folder, "-s", photos[1], "-p", tiny_preset_file, "--out-dir", folder,
        "--name", pattern, "--overwrite", "-q",
    )  # fmt: skip
    victim = folder / f"{names[1]}.png"
    _one_error(result, f"output {victim} is an input of this render", "never replaces an input")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_an_output_that_is_a_folder_is_refused_up_front(
    tmp_path, photos, tiny_preset_file, no_network, overwrite
):
    """Issue 25.12: found only after the render ("Is a directory"), a .checkpoint/ left."""
    folder = tmp_path / "out.png"
    folder.mkdir()
    result = _render(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", folder, *overwrite)
    _one_error(result, f"output {folder} is an existing folder, not a file: choose another -o")
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "tubingen-x.png").mkdir()
    result = _render(
        photos[0], photos[2], "-s", photos[1], "-p", tiny_preset_file, *overwrite,
        "--out-dir", tmp_path / "batch", "--name", "{content}-x.png",
    )  # fmt: skip
    _one_error(result, "tubingen-x.png is an existing folder", "--out-dir or --name")
    assert sorted(p.name for p in tmp_path.rglob("*checkpoint*")) == []


def test_resume_keeps_stage_images_it_did_not_write(tmp_path, photos, renderer):
    out, stages = tmp_path / "o.png", tmp_path / "stages"
    stages.mkdir()
    (tmp_path / "o.png.checkpoint").mkdir()  # one stage of two finished
    (tmp_path / "o.png.checkpoint" / "state.json").write_text(json.dumps({"stages": [{}]}))
    mine, theirs = stages / "o.stage1.32x24.png", stages / "o.stage2.64x48.png"
    mine.write_bytes(b"written by the interrupted render")
    job = RenderJob(content=photos[0], output=out, save_stages=stages, resume=True)
    CheckedJob(job, renderer)  # its own stage 1 image is no obstacle
    theirs.write_bytes(b"somebody else's")
    with pytest.raises(UsageError, match="o.stage2.64x48.png already exists; pass overwrite"):
        CheckedJob(job, renderer)
    assert theirs.read_bytes() == b"somebody else's"


def test_an_image_without_its_manifest_is_finished_by_resume(
    tmp_path, photos, tiny_preset_file, monkeypatch
):
    """The disk fills (or the process dies) after the image and before the manifest: the same
    command says to --resume, which writes the same image and its manifest."""
    out = tmp_path / "o.png"
    command = [photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out, "-q"]

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr("stylecascade.job.write_json", full_disk)
        failed = _render(*command)
        _one_error(failed, f"cannot write {out.with_suffix('.json')}", "No space left", code=1)
    image = out.read_bytes()
    assert not out.with_suffix(".json").exists()
    _one_error(_render(*command), "holds an interrupted render; pass --resume")
    assert _render(*command, "--resume").exit_code == 0
    assert out.read_bytes() == image
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "done"
    assert not (tmp_path / "o.png.checkpoint").exists()


def test_file_names_that_are_not_utf8_render_and_are_recorded(tmp_path, photos, tiny_preset_file):
    """``caf\\xe9.png`` (Latin-1 bytes on a UTF-8 system): the image, the manifest (with
    ``\\uXXXX`` escapes that read back to the same name) and the file's provenance text."""
    photo = tmp_path / os.fsdecode(b"caf\xe9.png")
    shutil.copy(photos[0], photo)
    out = tmp_path / os.fsdecode(b"styled-\xe9.png")
    result = _render(photo, "-s", photos[1], "-p", tiny_preset_file, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert os.fsencode(manifest["content"]) == os.fsencode(str(photo))
    with Image.open(out) as image:
        assert image.info["stylecascade:manifest"] == "styled-\\udce9.json"


def _tmpfs(folder: Path, options: str):
    """Mount a tmpfs on ``folder`` (needs root, else the test is skipped); unmount after."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """A real 16 KiB file system."""
    yield from _tmpfs(tmp_path / "disk", "size=16k")


@pytest.fixture
def read_only_disk(tmp_path):
    """A real read-only file system."""
    yield from _tmpfs(tmp_path / "ro", "ro,size=16k")


def test_a_full_disk_during_a_checkpoint_is_one_line(small_disk, photos, tiny_preset_file):
    out = small_disk / "o.png"
    result = _render(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out, "-q")
    _one_error(result, "cannot write", "No space left on device", code=1)
    assert not out.exists()


def test_a_killed_writes_temporary_is_cleaned_by_the_next_render(tmp_path, photos, renderer):
    out = tmp_path / "o.png"
    stale = [tmp_path / ".o.png.k3j2x9.tmp", tmp_path / ".o.json.q8w1e2.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 4096)  # what kill -9 during a write leaves
    other = tmp_path / ".other.png.a1b2c3.tmp"
    other.write_bytes(b"another output's")
    CheckedJob(RenderJob(content=photos[0], output=out), renderer).run()
    assert out.exists() and not any(path.exists() for path in stale)
    assert other.exists()


def _saved_checkpoint(tmp_path):
    checkpoint = Checkpoint(tmp_path / "o.png", "render-A")
    image = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    checkpoint.save_stage([{"size": [32, 24]}], image)
    return checkpoint, image


def _flip_one_bit(path, image):
    data = bytearray(path.read_bytes())
    offset = data.find(image.numpy().tobytes()[:64])  # the stored pixel values
    data[offset] ^= 0x01  # the lowest mantissa bit of the first value: still a valid image
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda f, _: (f / "state.json").write_text("null"),
            "state.json is not a checkpoint state",
        ),
        (lambda f, _: (f / "state.json").write_text("{"), "state.json: not valid JSON"),
        (lambda f, _: (f / "state.json").write_text('{"fingerprint": "render-A"}'), "not a checkp"),
        (lambda f, _: (f / "stage1.pt").write_bytes(b""), "cannot read stage1.pt"),
        (lambda f, _: torch.save(torch.rand(1, 3, 5, 5), f / "stage1.pt"), "not the image of its"),
        (lambda f, _: torch.save(torch.full((1, 3, 24, 32), float("nan")), f / "stage1.pt"), "0–1"),
        (lambda f, image: _flip_one_bit(f / "stage1.pt", image), "does not match the digest"),
    ],
)
def test_a_damaged_checkpoint_is_refused_with_one_line(tmp_path, damage, message):
    checkpoint, image = _saved_checkpoint(tmp_path)
    assert torch.equal(checkpoint.load()[1], image)  # intact: loads
    damage(checkpoint.folder, image)
    with pytest.raises(UsageError) as info:
        checkpoint.load()
    assert message in str(info.value) and "pass overwrite to start over" in str(info.value)


def test_the_same_render_spelled_with_other_paths_has_the_same_fingerprint(
    tmp_path, photos, tiny_preset, monkeypatch
):
    monkeypatch.chdir(photos[0].parent)
    (tmp_path / "sub").mkdir()
    spellings = [
        (photos[0], photos[1]),
        (Path(photos[0].name), Path(photos[1].name)),
        (tmp_path / "sub" / ".." / photos[0].name, Path("sub/..") / photos[1].name),
    ]
    prints = set()
    for content, style in spellings:
        renderer = Renderer(tiny_preset.resolved(styles=[style]), device="cpu")
        render = CheckedJob(RenderJob(content=content, output=tmp_path / "o.png"), renderer)
        prints.add(render.checkpoint.fingerprint)
    assert len(prints) == 1


def test_an_output_name_too_long_for_the_file_system_is_refused_up_front(
    tmp_path, photos, tiny_preset_file, no_network
):
    """Issue 14, case 8: 255 bytes is the limit, and the writers add 14 for the temporary."""
    out = tmp_path / ("a" * 241 + ".png")  # 245 bytes: the file fits, its temporary does not
    result = _render(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out, "-q")
    # the longest name the render writes is its checkpoint folder's (output + ".checkpoint")
    _one_error(result, ".png.checkpoint: the file name is 256 bytes", "takes 241", "shorter name")
    assert not list(tmp_path.glob("a*")) and not list(tmp_path.glob(".a*"))


def test_a_batch_name_too_long_is_refused_before_any_photo(
    tmp_path, photos, tiny_preset_file, no_network
):
    result = _render(
        photos[0], photos[2], "-s", photos[1], "-p", tiny_preset_file, "--out-dir", tmp_path / "o",
        "--name", "{content}" + "x" * 250 + ".png", "-q",
    )  # fmt: skip
    _one_error(result, "bytes; this file system takes 241")


@pytest.mark.parametrize("option", ["-o", "--save-stages", "--out-dir"])
def test_a_read_only_output_folder_is_refused_up_front(
    read_only_disk, photos, tiny_preset_file, no_network, tmp_path, option
):
    target = {"-o": read_only_disk / "o.png"}.get(option, read_only_disk)
    extra = ["-o", tmp_path / "o.png"] if option == "--save-stages" else []
    result = _render(photos[0], "-s", photos[1], "-p", tiny_preset_file, option, target, *extra)
    _one_error(
        result, f"cannot write {read_only_disk}/", f"{read_only_disk}: read-only file system"
    )


def test_save_stages_under_a_file_is_refused_up_front(
    tmp_path, photos, tiny_preset_file, no_network
):
    (tmp_path / "file").write_text("x")
    result = _render(
        photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", tmp_path / "o.png",
        "--save-stages", tmp_path / "file" / "stages", "-q",
    )  # fmt: skip
    _one_error(result, "--save-stages", "cannot create it")


def test_ctrl_c_while_the_manifest_is_written_finishes_both(
    tmp_path, photos, tiny_preset_file, monkeypatch
):
    """Issue 14, case 21: before, the manifest was cut off and the line said "no output
    written" beside a written image."""
    import stylecascade.job as job_module

    out, real = tmp_path / "o.png", job_module.write_json

    def write_json(path, data):
        if path == out.with_suffix(".json"):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the final writes
        real(path, data)

    monkeypatch.setattr(job_module, "write_json", write_json)
    result = _render(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out, "-q")
    _one_error(result, "interrupted after the render was complete", "o.json are written", code=130)
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "done"
    assert Image.open(out).size == (64, 48)  # the tiny preset's last stage
    assert not (tmp_path / "o.png.checkpoint").exists()


def test_ctrl_c_in_a_batch_reports_the_photos_already_done(
    tmp_path, photos, tiny_preset_file, monkeypatch
):
    import stylecascade.job as job_module

    calls, real = [], job_module.CheckedJob.run

    def run(self, observer=None, stop=None):
        calls.append(self.job.content.name)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, observer, stop)

    monkeypatch.setattr(job_module.CheckedJob, "run", run)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["render", *map(str, photos), "-s", str(photos[1]), "-p", str(tiny_preset_file),
         "--out-dir", str(out), "--name", "{content}-x.png"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 130, result.output
    assert "1 done, 0 skipped, 0 failed, 1 interrupted, 1 not started" in result.output
    assert "no output written" not in result.output
    assert "interrupted before" in result.output and "not started" in result.output
    assert (out / "tubingen-x.png").exists() and not (out / "the_scream-x.png").exists()


def test_nothing_is_written_into_the_package_itself(tmp_path, photos, tiny_preset_file, no_network):
    """Issue 28.3: README's --save-stages stages/, run from the clone's root, wrote stage
    images into the package folder stages/ (stylecascade.stages)."""
    import stylecascade.stages

    package = Path(stylecascade.stages.__file__).parent
    before = sorted(package.iterdir())
    result = _render(
        photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", tmp_path / "o.png",
        "--save-stages", package, "-q",
    )  # fmt: skip
    _one_error(result, "is inside stylecascade's own package", "write under another folder")
    assert sorted(package.iterdir()) == before


def test_the_same_render_run_again_keeps_its_output(tmp_path, photos, tiny_preset_file):
    """Issue 28.4: running README's command again failed "already exists"; the same render
    (same fingerprint) now keeps the first image and says so, exit 0; another render to the
    same file is still refused."""
    out = tmp_path / "o.png"
    args = [photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out]
    assert _render(*args, "-q").exit_code == 0
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    again = _render(*args)
    assert again.exit_code == 0 and "this render was done before" in again.output
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before
    _one_error(_render(*args, "--seed", "7"), "o.png already exists", "--overwrite")
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before


def test_saving_the_same_look_again_succeeds_and_another_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path))
    runner = CliRunner()
    save = ["presets", "save", "mine", "--from"]
    assert runner.invoke(app, [*save, "draft"]).exit_code == 0
    assert runner.invoke(app, [*save, "draft"]).exit_code == 0
    _one_error(runner.invoke(app, [*save, "standard"]), "already exists, with another look")
    saved = load_preset(str(tmp_path / "presets" / "mine.yaml"))
    assert [s.long_edge for s in saved.stages] == [128, 256, 512]  # draft's, kept
