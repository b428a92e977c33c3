"""Pictures that explain a render: reconstructions, contact sheets, loss curves."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from stylecascade.cli import app
from stylecascade.errors import UsageError
from stylecascade.pictures import contact_sheet, loss_curve, stage_label
from stylecascade.stages.reconstruct import reconstruct
from typer.testing import CliRunner


def test_content_reconstruction_from_a_low_layer_approaches_the_photo(
    tiny_extractor, content_image
):
    extractor = tiny_extractor(["relu1_1"])
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(content_image.shape, generator=torch.Generator().manual_seed(0))
    image = reconstruct(extractor, content_image, ["relu1_1"], "content", 40, generator)
    assert image.shape == content_image.shape
    before = (noise - content_image).pow(2).mean()
    after = (image - content_image).pow(2).mean()
    assert after < 0.5 * before


def test_style_reconstruction_matches_gram_matrices(tiny_extractor, style_image):
    from stylecascade.stages.gram import gram_matrix

    layers = ["relu1_1", "relu2_1"]
    extractor = tiny_extractor(layers)
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(style_image.shape, generator=torch.Generator().manual_seed(0))
    image = reconstruct(extractor, style_image, layers, "style", 40, generator)

    def gram_error(x):
        a, b = extractor(x), extractor(style_image)
        return sum((gram_matrix(a[k]) - gram_matrix(b[k])).pow(2).mean() for k in layers)

    assert gram_error(image) < 0.2 * gram_error(noise)
    with pytest.raises(ValueError, match="term must be"):
        reconstruct(extractor, style_image, layers, "texture", 1, generator)


def test_contact_sheet_orders_stages_numerically(tmp_path):
    for n, (w, h) in ((10, (80, 60)), (2, (40, 30)), (1, (20, 15))):
        Image.new("RGB", (w, h), (n * 20, 0, 0)).save(tmp_path / f"out.stage{n}.{w}x{h}.png")
    sheet = contact_sheet(tmp_path, height=64, columns=3)
    assert sheet.height > 64 and sheet.width > 3 * 64
    assert stage_label(tmp_path / "out.stage10.80x60.png") == "stage 10 - 80x60"
    # stage 1 first (darkest red), stage 10 last
    row = np.asarray(sheet)[40]
    reds = [px[0] for px in row if px[1] == 0 and px[2] == 0 and px[0] > 0]
    assert reds[0] == 20 and reds[-1] == 200
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no images in it"):
        contact_sheet(empty)


def test_loss_curve(tmp_path):
    manifest = {
        "stages": [
            {"size": [64, 48], "loss_trace": [1e6, 5e5, 2e5, 1e5]},
            {"size": [128, 96], "loss_trace": [3e5, 1e5, 8e4]},
        ]
    }
    plot = np.asarray(loss_curve(manifest, (400, 200)))
    assert plot.shape == (200, 400, 3)
    assert ((plot[..., 0] == 200) & (plot[..., 1] == 60)).sum() > 50  # the red curve
    with pytest.raises(UsageError, match="no loss traces"):
        loss_curve({"stages": [{"size": [1, 1]}]})


def test_inspect_end_to_end(tmp_path, photos):
    stages = tmp_path / "stages"
    stages.mkdir()
    Image.open(photos[0]).save(stages / "o.stage1.160x120.png")
    manifest = tmp_path / "o.json"
    manifest.write_text(json.dumps({"stages": [{"size": [8, 6], "loss_trace": [3.0, 2.0, 1.0]}]}))
    out = tmp_path / "pics" / "new"  # created, and said so
    args = [
        "inspect", str(photos[0]), "-s", str(photos[1]), "--size", "48", "--iterations", "4",
        "--save-stages", str(stages), "--manifest", str(manifest), "--out-dir", str(out),
        "--device", "cpu",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"created folder {out}" in result.output
    stamped = re.findall(  # not a terminal: a timestamped line per reconstruction, as render's
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
        r"reconstructions (\d+)/10: (content|style) \S.* in [\d.]+ s$",
        result.output,
        re.MULTILINE,
    )
    assert [(int(n), row) for n, row in stamped] == [
        *((n, "content") for n in range(1, 6)),
        *((n, "style") for n in range(6, 11)),
    ], result.output
    with Image.open(out / "layers.png") as grid:
        assert grid.width > 5 * 48 and grid.height > 2 * 36
        pixels = np.asarray(grid.convert("RGB"), dtype=np.float32)
    # ten reconstructions, not blank cells: most columns of the grid hold varied pixels
    assert (pixels.std(axis=0).mean(axis=1) > 10).mean() > 0.5
    with Image.open(out / "stages.png") as sheet:
        colors = {tuple(c) for c in np.asarray(sheet.convert("RGB")).reshape(-1, 3)[::7]}
        assert len(colors) > 200  # the photo is on the sheet, not only its label
        assert sheet.height > 64
    with Image.open(out / "losses.png") as plot:
        curve = np.asarray(plot.convert("RGB"))
    assert ((curve[..., 0] == 200) & (curve[..., 1] == 60)).sum() > 50  # the red curve
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.output


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to do"),
        (["CONTENT"], "needs --style"),
        (["--manifest", "missing.json"], "--manifest missing.json: no such file"),
        (["--save-stages", "nope"], "--save-stages nope: no such folder"),
        # issue 14, case 13: before, a traceback each
        (
            ["CONTENT", "-s", "CONTENT", "--size", "16"],
            "--size 16 makes the photo 16×12 px; the "
            "network needs 16 px on the short edge: use --size 22 or more",
        ),
        (["--save-stages", "STAGES"], "--save-stages STAGES/broken.png: not an image Pillow can"),
        (["--manifest", "LIST"], "--manifest LIST: not a stylecascade manifest"),
        (["--manifest", "TEXT"], "--manifest TEXT: the manifest has no loss traces"),
    ],
)
def test_inspect_usage_errors(tmp_path, photos, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "broken.png").write_text("not a picture")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "text.json").write_text('{"stages": [{"loss_trace": ["1.5", null, true]}]}')
    names = {"CONTENT": photos[0], "STAGES": "stages", "LIST": "list.json", "TEXT": "text.json"}
    args = [str(names.get(a, a)) for a in args]
    message = message.replace("STAGES", "stages").replace("LIST", "list.json")
    result = CliRunner().invoke(app, ["inspect", *args, "-q"])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and message.replace("TEXT", "text.json") in lines[0], result.output


def test_loss_curve_of_denormal_and_huge_losses(tmp_path):
    """Issue 14, case 13: a denormal loss (5e-324) made ``10.0 ** -324 == 0`` and a math
    error; now every value from 5e-324 to 1e300 is on the plot."""
    manifest = {"stages": [{"size": [8, 6], "loss_trace": [1e300, 1.0, 5e-324, 5e-324]}]}
    plot = np.asarray(loss_curve(manifest).convert("RGB"))
    red = (plot[..., 0] == 200) & (plot[..., 1] == 60)
    rows = np.nonzero(red.any(axis=1))[0]
    assert rows.min() < 40 and rows.max() > 300  # from the top of the plot to its bottom


def test_inspects_old_spellings_still_work_and_name_the_new_flags(tmp_path, photos):
    """Issue 33.5: inspect's folder flags are named as render's (--out-dir, --save-stages); the
    old -o/--output and --stages still work and say the new spelling."""
    stages = tmp_path / "stages"
    stages.mkdir()
    Image.open(photos[0]).save(stages / "o.stage1.160x120.png")
    out = tmp_path / "pics"
    result = CliRunner().invoke(app, ["inspect", "--stages", str(stages), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "note: --stages is now --save-stages" in result.output
    assert "note: --output/-o is now --out-dir" in result.output
    assert (out / "stages.png").is_file()
