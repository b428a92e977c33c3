"""Saved presets (validate, save --from OUT.json, user folder) and batch renders."""

import json
import re
from pathlib import Path

import pytest
from conftest import TINY_PRESET
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from stylecascade.cli import app
from stylecascade.errors import ArgumentError, UsageError
from stylecascade.naming import expand_inputs, output_name
from stylecascade.options import flag_of
from stylecascade.preset_files import load_preset, parse_preset, preset_yaml, user_preset_dir
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private STYLECASCADE_HOME whose weights are the real cached ones."""
    from stylecascade.paths import home as weights_home

    real = weights_home()
    fake = tmp_path / "home"
    (fake / "weights").mkdir(parents=True)
    for file in (real / "weights").glob("*.pt"):
        (fake / "weights" / file.name).symlink_to(file)
    monkeypatch.setenv("STYLECASCADE_HOME", str(fake))
    return fake


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_user_preset_dir_follows_stylecascade_home(home):
    assert user_preset_dir() == home / "presets"


def test_preset_yaml_round_trips(tiny_preset, tmp_path):
    styled = tiny_preset.resolved(
        styles=[tmp_path / "a.jpg"], blend_weights=[2.0], color="histogram"
    )
    again = parse_preset(preset_yaml(styled), styled.name, "x.yaml")
    assert again == styled


def test_validate(tiny_preset_file, tmp_path):
    ok = _invoke("presets", "validate", tiny_preset_file)
    assert ok.exit_code == 0 and "valid; 2 stages 32×8 → 64×6" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_preset_file.read_text().replace("optimizer: lbfgs", "optimizer: sgd"))
    result = _invoke("presets", "validate", bad)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {bad}: defaults.optimizer: must be one of lbfgs, adam; got 'sgd'"
    )


def test_save_refuses_bad_names_and_bundled_names(tiny_preset_file):
    for name, message in (("draft", "is a bundled preset's"), ("a/b", "use a plain name")):
        result = _invoke("presets", "save", name, "--from", tiny_preset_file)
        assert result.exit_code == 2 and message in result.output


def test_saving_a_name_whose_yml_exists_replaces_that_file(tiny_preset_file, home):
    folder = home / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "look.yml").write_text(tiny_preset_file.read_text())
    refused = _invoke("presets", "save", "look", "--from", "draft")
    assert refused.exit_code == 2 and f"{folder / 'look.yml'} already exists" in refused.output
    saved = _invoke("presets", "save", "look", "--from", "draft", "--overwrite")
    assert saved.exit_code == 0 and saved.output.strip() == f"saved {folder / 'look.yml'}"
    assert not (folder / "look.yaml").exists()
    assert [s.long_edge for s in load_preset("look").stages] == [128, 256, 512]  # draft's


def test_render_save_then_batch_a_folder_with_the_saved_preset(
    tmp_path, photos, tiny_preset_file, home
):
    # 1. a render with two styles and a color mode
    first = tmp_path / "first.png"
    result = _invoke(
        "render", photos[0], "-s", photos[1], "-s", photos[2], "--blend-weight", 3,
        "--blend-weight", 1, "--color", "luminance", "--preset", tiny_preset_file,
        "-o", first, "--device", "cpu", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    # 2. its look saved as a preset, then found by name
    saved = _invoke("presets", "save", "my-look", "--from", first.with_suffix(".json"))
    assert saved.exit_code == 0 and "saved" in saved.output
    assert (home / "presets" / "my-look.yaml").exists()
    look = load_preset("my-look")
    assert look.color == "luminance"
    assert [(Path(s.image).name, s.weight) for s in look.styles] == [
        ("starry_night.png", 3.0),
        ("the_scream.png", 1.0),
    ]
    again = _invoke("presets", "save", "my-look", "--from", first.with_suffix(".json"))
    assert again.exit_code == 0  # the same look again: nothing to change (issue 28.4)
    other = _invoke("presets", "save", "my-look", "--from", "standard")
    assert other.exit_code == 2 and "already exists, with another look" in other.output
    listed = _invoke("presets", "list")
    assert "my-look" in listed.output and "saved" in listed.output

    # 3. a folder of three photos, one command, the saved preset (no --style needed)
    folder, out_dir = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    out_dir.mkdir()
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        with Image.open(photos[0]) as img:
            img.rotate(90 * i, expand=True).save(folder / name)
    (folder / "notes.txt").write_text("not a photo")
    (out_dir / "b-starry_night+the_scream.png").write_bytes(b"existing")
    batch = _invoke(
        "render", folder, "--preset", "my-look", "--out-dir", out_dir, "--device", "cpu"
    )
    assert batch.exit_code == 0, batch.output
    assert "batch summary" in batch.output
    assert "2 done, 1 skipped, 0 failed" in batch.output
    for name in ("a", "c"):
        with Image.open(out_dir / f"{name}-starry_night+the_scream.png") as img:
            assert max(img.size) == 64
        manifest = json.loads((out_dir / f"{name}-starry_night+the_scream.json").read_text())
        assert manifest["color"] == "luminance" and len(manifest["styles"]) == 2
    assert (out_dir / "b-starry_night+the_scream.png").read_bytes() == b"existing"

    # 4. --preset OUT.json directly, one failing input among good ones
    broken = folder / "d.png"
    broken.write_bytes(b"\x89PNG broken")
    more = _invoke(
        "render", folder / "a.png", broken, "--preset", first.with_suffix(".json"),
        "--out-dir", out_dir, "--name", "{content}-again.png", "--device", "cpu",
    )  # fmt: skip
    assert more.exit_code == 2, more.output
    assert "1 done, 0 skipped, 1 failed" in more.output
    assert (out_dir / "a-again.png").exists() and not (out_dir / "d-again.png").exists()


def test_expand_inputs(tmp_path):
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / "a.PNG").write_bytes(b"x")
    (tmp_path / "readme.md").write_text("x")
    assert [p.name for p in expand_inputs([tmp_path])] == ["a.PNG", "b.jpg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no image files"):
        expand_inputs([empty])
    with pytest.raises(UsageError, match="no such file"):
        expand_inputs([tmp_path / "nope.jpg"])


def test_output_name_pattern(tiny_preset, tmp_path):
    preset = tiny_preset.resolved(styles=[tmp_path / "starry.jpg"])
    assert output_name("{content}-{styles}-{seed}.jpg", Path("x/p.jpeg"), preset, 3) == (
        "p-starry-3.jpg"
    )
    for bad, message in (
        ("{photo}.png", "unknown field {photo}"),
        ("{content}.gif", "ending in"),
        ("{content", "expected '}' before end of string; write {{ or }} for a brace"),
        ("x}.png", "Single '}' encountered"),
        ("{content:d}.png", "write plain fields like {content}, no : or !"),
        ("{content!r}.png", "write plain fields like {content}"),
        ("{content:>300}.png", "write plain fields like {content}"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            output_name(bad, Path("p.jpg"), preset, 0)
    assert output_name("{{{content}}}.png", Path("p.jpg"), preset, 0) == "{p}.png"


@settings(max_examples=300, deadline=None, derandomize=True)  # the same examples in every CI run
@given(pattern=st.text(alphabet="{}:!/.-xcontepsyldg0123456789png ", max_size=40))
def test_any_name_pattern_gives_a_file_name_or_one_usage_error(pattern):
    preset = parse_preset(TINY_PRESET, "tiny", "tiny.yaml").resolved(styles=["starry.jpg"])
    try:
        name = output_name(pattern, Path("photo.jpg"), preset, 7)
    except ArgumentError as exc:  # the command line shows the flag
        assert "\n" not in str(exc) and exc.named(flag_of).startswith(f"--name {pattern!r}: ")
    else:
        assert "/" not in name and Path(name).suffix.lower() in (".png", ".jpg", ".jpeg")


def test_batch_usage_errors(tmp_path, photos):
    both = _invoke("render", photos[0], photos[1], "-s", photos[1], "-o", tmp_path / "o.png")
    assert both.exit_code == 2 and "-o names one output" in both.output
    in_the_way = _invoke("render", photos[0], "-s", photos[1], "--out-dir", photos[2])
    assert in_the_way.exit_code == 2
    assert f"--out-dir {photos[2]}: exists and is not a folder" in in_the_way.output
    dup = _invoke(
        "render", photos[0], photos[0], "-s", photos[1], "--out-dir", tmp_path, "--name", "x.png"
    )
    assert dup.exit_code == 2
    assert f"photo {photos[0]} is given twice (--name 'x.png'): give each photo once" in dup.output


@pytest.mark.parametrize(
    ("names", "pattern", "fix"),
    [
        (("a.png", "a.jpg"), "{content}.png", "add {ext} to --name (e.g. '{content}-{ext}.png')"),
        (("a.png", "b.png"), "x.png", "add {content} to --name"),
        (("a.png", "a.jpg"), "{content}-{preset}.png", "add {ext} to --name"),
    ],
)
def test_two_photos_sharing_an_output_say_which_and_what_separates_them(
    tmp_path, photos, names, pattern, fix
):
    """Issue 25.13: a.png + a.jpg said "add {content}" although the pattern had it."""
    for name in names:
        Image.open(photos[0]).convert("RGB").save(tmp_path / name)
    first, second = (tmp_path / n for n in names)
    out = tmp_path / "out"
    out.mkdir()
    result = _invoke("render", first, second, "-s", photos[1], "--out-dir", out, "--name", pattern)
    assert result.exit_code == 2, result.output
    assert f"photos {first} and {second} would both write {out}/" in result.output
    assert fix in result.output
    draft = load_preset("draft")
    separated = [output_name("{content}-{ext}.png", p, draft, 0) for p in (first, second)]
    assert len(set(separated)) == 2


def test_a_preset_name_too_long_is_a_usage_error_naming_it(tmp_path, monkeypatch):
    """Issue 25.13: exit 1 naming the folder ("File name too long")."""
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path))
    result = _invoke("presets", "save", "x" * 300, "--from", "draft")
    assert result.exit_code == 2, result.output
    assert (
        "preset name 'xxxx" in result.output and "is 300 bytes long; at most 100" in result.output
    )


def test_a_look_tried_small_saves_its_ladder_not_its_size(tmp_path, photos, monkeypatch):
    """Issue 28.5: a look tried at 128 px became a one-stage 128 px preset."""
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path / "home"))
    preview = tmp_path / "preview.png"
    preset = tmp_path / "look.yaml"
    preset.write_text(
        TINY_PRESET.replace("size: 64, it", "size: 128, it").replace("size: 32", "size: 64")
    )
    result = _invoke(
        "render", photos[0], "-s", photos[1], "-p", preset, "--size", "64", "-o", preview, "-q"
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(preview.with_suffix(".json").read_text())
    assert [s["size"] for s in manifest["preset"]["stages"]] == [64]  # what was rendered
    assert [s["size"] for s in manifest["look"]["stages"]] == [64, 128]  # the look
    assert _invoke("presets", "save", "mine", "--from", preview.with_suffix(".json")).exit_code == 0
    assert [s.long_edge for s in load_preset("mine").stages] == [64, 128]
