"""A print with bleed: sizes in px, the photo extended (a wider crop, else reflection), the
safe-margin guide, and a render on files that carries it all (:mod:`stylecascade.printsize`,
:mod:`stylecascade.bleed`, :mod:`stylecascade.printlab`)."""

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from stylecascade.bleed import BLEED_SHADE, SAFE_COLOUR, TRIM_COLOUR, extend_photo, guide_image
from stylecascade.errors import UsageError
from stylecascade.job import CheckedJob, RenderJob
from stylecascade.output import OutputOptions, check_output
from stylecascade.printlab import guide_path
from stylecascade.printsize import final_long_edge, mm_to_px, parse_length, with_bleed
from stylecascade.profiles import ADOBE_RGB_ICC
from stylecascade.renderer import Renderer
from stylecascade.stages.resample import resize


@pytest.mark.parametrize(
    "bleed, dpi, px",
    [
        ("3mm", 300, 35),  # 35.43
        ("3mm", 240, 28),  # 28.35
        ("3mm", 150, 18),  # 17.72: rounded up
        ("5mm", 300, 59),  # 59.06
        ("0.3cm", 254, 30),  # exactly 30
        ("0.125in", 300, 38),  # 37.5: a tie, rounded to even
        ("4", 600, 94),  # a bare number is mm: 94.49
    ],
)
def test_bleed_in_px_is_the_nearest_whole_px(bleed, dpi, px):
    assert mm_to_px(parse_length(bleed, "bleed", 25), dpi) == px


def test_the_final_long_edge_covers_the_trim_and_the_bleed_on_both_sides():
    assert final_long_edge(None, "30x40cm", 300, "3mm") == 4724 + 2 * 35
    assert final_long_edge(None, "10x15cm", None, "3mm") == 1772 + 2 * 35  # 300 DPI
    assert final_long_edge(None, "8x10in", 240, "0.125in") == 2400 + 2 * 30
    with pytest.raises(UsageError, match="bleed needs print_size"):
        final_long_edge(800, None, None, "3mm")
    with pytest.raises(UsageError, match="at most 25 mm"):
        final_long_edge(None, "30x40cm", 300, "3cm")
    with pytest.raises(UsageError, match="write a length such as"):
        final_long_edge(None, "30x40cm", 300, "3 furlongs")


@pytest.mark.parametrize(
    "photo_hw, trim_px",
    [((768, 1024), (3543, 4724)), ((1024, 768), (4724, 3543)), ((500, 500), (4724, 3543))],
)
def test_the_trim_turns_with_the_photo(photo_hw, trim_px):
    plan = with_bleed("30x40cm", 300, "3mm", photo_hw)
    assert plan.trim_px == trim_px and plan.bleed_px == 35
    assert plan.size_px == (trim_px[0] + 70, trim_px[1] + 70)
    assert max(plan.size_px) == final_long_edge(None, "30x40cm", 300, "3mm")
    manifest = plan.manifest()
    assert manifest["trim_px"] == [trim_px[1], trim_px[0]] and manifest["bleed_mm"] == 3.0


def _photo(height: int, width: int) -> torch.Tensor:
    """A photo whose every pixel differs: ``(1, 3, H, W)`` in 0–1."""
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([y / height, x / width, (x * 7 + y * 13) % 17 / 16])[None].float()


def test_the_bleed_takes_the_photos_own_pixels_where_it_has_them():
    """The trim shows the largest centred crop in the print's shape; beyond it the bleed takes
    the photo's pixels on the axis with some to spare, and reflects on the other (there the
    photo's edge is the trim's)."""
    photo = _photo(160, 240)  # trim 20×10 mm at 254 DPI: 100×200 px; 1.2 photo px per px
    plan = with_bleed("20x10mm", 254, "1mm", (160, 240))
    assert plan.trim_px == (100, 200) and plan.bleed_px == 10 and plan.size_px == (120, 220)
    assert plan.box == (8, -12, 152, 252)  # 80 ± 72 rows: inside; 120 ± 132 columns: beyond
    assert plan.reflected == (0, 0, 12, 12) and plan.extension == "crop and reflection"
    out = extend_photo(photo, plan)
    assert out.shape == (1, 3, 120, 220)
    padded = torch.nn.functional.pad(photo[..., 8:152, :], (12, 12, 0, 0), mode="reflect")
    assert torch.allclose(out, resize(padded, (120, 220)).clamp(0, 1))
    rows = out[0, 0, :20, 110]  # channel 0 is the photo's row / 160: the top bleed is rows
    assert (rows.diff() > 0).all()  # 8–20 of the photo, going on into the trim (not mirrored)
    assert rows[0].item() == pytest.approx(8.1 / 160, abs=0.1 / 160)  # row centre 8 + 0.1


def test_a_photo_without_pixels_to_spare_is_reflected():
    photo = _photo(140, 200)  # 1 photo px per output px: 20 px to spare above and below
    plan = with_bleed("20x10mm", 254, "1mm", (140, 200))
    assert plan.box == (10, -10, 130, 210) and plan.reflected == (0, 0, 10, 10)
    assert plan.extension == "crop and reflection"
    out = extend_photo(photo, plan)
    assert out.shape == (1, 3, 120, 220)
    assert torch.allclose(out[..., 10:210], photo[..., 10:130, :], atol=1e-6)  # a wider crop
    for k in range(1, 11):  # reflected at the edge, the edge column not repeated
        assert torch.allclose(out[..., 10 - k], photo[..., 10:130, k], atol=1e-6)
        assert torch.allclose(out[..., 209 + k], photo[..., 10:130, 199 - k], atol=1e-6)
    exact = with_bleed("20x10mm", 254, "1mm", (100, 200))  # the trim's own shape
    assert exact.extension == "reflection" and exact.reflected == (10, 10, 10, 10)


def test_the_guide_dims_the_bleed_and_draws_the_trim_and_the_safe_margin():
    image = np.full((120, 220, 3), 200, np.uint8)
    guide = np.asarray(guide_image(image, 10, 1.0, 254))  # 1 mm at 254 DPI: 10 px
    assert guide.shape == (120, 220, 3)
    assert (guide[2, 50] == round(200 * BLEED_SHADE)).all()  # in the bleed: dimmed
    assert tuple(guide[10, 50]) == TRIM_COLOUR and tuple(guide[50, 10]) == TRIM_COLOUR
    assert tuple(guide[20, 50]) == SAFE_COLOUR and tuple(guide[50, 209 - 10]) == SAFE_COLOUR
    assert (guide[50, 100] == 200).all()  # inside the safe area: untouched
    with pytest.raises(UsageError, match="leaves nothing inside the trim"):
        guide_image(image, 10, 5.0, 254)


def test_bleed_and_safe_margin_need_a_print_size(tmp_path):
    out = tmp_path / "o.tif"
    for field in ("bleed", "safe_margin"):
        with pytest.raises(UsageError, match=f"{field} needs print_size") as caught:
            check_output(out, OutputOptions(**{field: "3mm"}))
        assert caught.value.argument == field
    check_output(out, OutputOptions(print_size="30x40cm", bleed="3mm", safe_margin="5mm"))


@pytest.fixture
def print_renderer(tiny_preset, photos):
    """A renderer whose final stage is the print's with bleed: 4×3 cm at 127 DPI (200×150 px)
    and 2 mm of bleed (10 px) → 220 px."""
    final = final_long_edge(None, "4x3cm", 127, "2mm")
    assert final == 220
    look = tiny_preset.resolved(styles=[photos[1]], iterations=1).with_final_size(final)
    return Renderer(look, device="cpu")


def test_a_render_with_bleed_writes_what_a_lab_takes(tmp_path, photos, print_renderer):
    out = tmp_path / "print.tif"
    options = OutputOptions(
        dpi=127, profile="adobe-rgb", compression="lzw",
        print_size="4x3cm", bleed="2mm", safe_margin="3mm",
    )  # fmt: skip
    manifest = CheckedJob(RenderJob(content=photos[0], output=out, output_options=options),
                          print_renderer).run()  # fmt: skip
    with Image.open(out) as img:  # the photo is landscape: so is the print
        assert img.size == (220, 170) and img.info["icc_profile"] == ADOBE_RGB_ICC
        assert img.info["dpi"] == pytest.approx((127, 127))
    with tifffile.TiffFile(out) as tif:
        text = json.loads(tif.pages[0].description)
        assert tif.pages[0].tags["Compression"].value == 5
    assert text["stylecascade:trim"] == "40x30mm 200x150px"
    assert text["stylecascade:bleed"] == "2mm 10px"
    entry = manifest["print"]
    assert entry["trim_mm"] == [40.0, 30.0] and entry["size_px"] == [220, 170]
    assert entry["bleed_px"] == 10 and entry["profile"] == "adobe-rgb"
    assert entry["compression"] == "lzw" and entry["extension"] == "reflection"  # 4:3 photo
    assert json.loads(out.with_suffix(".json").read_text())["print"] == entry
    with Image.open(guide_path(out)) as guide:
        assert guide.size == (220, 170)
        assert tuple(np.asarray(guide)[10, 100]) == TRIM_COLOUR


def test_a_render_sized_without_the_bleed_is_refused(tmp_path, photos, tiny_preset):
    renderer = Renderer(tiny_preset.resolved(styles=[photos[1]]).with_final_size(200), device="cpu")
    options = OutputOptions(dpi=127, print_size="4x3cm", bleed="2mm")
    job = RenderJob(content=photos[0], output=tmp_path / "o.png", output_options=options)
    with pytest.raises(UsageError, match="is 200 px, the print with bleed needs 220 px"):
        CheckedJob(job, renderer)
