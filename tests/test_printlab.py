"""Files a print lab takes: output profiles (converted with LittleCMS, embedded, read back),
16-bit conversion, TIFF compression (:mod:`stylecascade.profiles`, :mod:`stylecascade.output`).

ΔE is measured on a colour chart made here: 216 patches (6 levels a channel) and a 32-step grey
ramp, in sRGB. Measured (Adobe RGB / Display P3): an 8-bit round trip sRGB → profile → sRGB
through LittleCMS ΔE2000 mean 0.06 / 0.04, max 0.33 / 0.40 (ΔE76 max 0.66 / 0.62); the 8-bit
file against exact float maths from the published primaries ΔE2000 max 0.33 / 0.42; 16-bit
(the LittleCMS table, 40 000 random colours) against exact maths ΔE2000 mean 0.12 / 0.09, max
0.89 / 0.66 (ΔE76 max 1.10 / 0.76). Bounds: round trip ΔE2000 < 0.75 (mean < 0.15), ΔE76
< 1.2; 8-bit file < 0.75; 16-bit < 1.2 (mean < 0.2).
"""

import ctypes
import ctypes.util
import io
import json
import struct

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms
from stylecascade.errors import UsageError
from stylecascade.output import OutputOptions, check_output, quantize, save_image
from stylecascade.profiles import (
    ADOBE_RGB_ICC,
    DISPLAY_P3_ICC,
    SRGB_ICC,
    convert,
    output_profile,
)

D65 = (0.3127, 0.3290)
PRIMARIES = {  # the published primaries (x, y) of R, G, B and each profile's tone curve
    "srgb": ([(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)], "srgb"),
    "adobe-rgb": ([(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)], 563 / 256),
    "display-p3": ([(0.68, 0.32), (0.265, 0.69), (0.15, 0.06)], "srgb"),
}


def _rgb_to_xyz(primaries) -> np.ndarray:
    """The 3×3 matrix linear RGB → XYZ (D65, Y of white 1) from ``(x, y)`` primaries."""

    def xyz(x, y):
        return np.array([x / y, 1.0, (1 - x - y) / y])

    matrix = np.stack([xyz(*p) for p in primaries], axis=1)
    return matrix * np.linalg.solve(matrix, xyz(*D65))


def _decode(values, curve):
    if curve == "srgb":
        return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
    return values**curve


def _xyz(values: np.ndarray, name: str) -> np.ndarray:
    """``(N, 3)`` encoded RGB in 0–1 of profile ``name`` → XYZ (D65)."""
    primaries, curve = PRIMARIES[name]
    return _decode(np.clip(values, 0, 1), curve) @ _rgb_to_xyz(primaries).T


def _lab(xyz: np.ndarray) -> np.ndarray:
    """CIE 1976 L*a*b* of XYZ, white D65."""
    t = xyz / (_rgb_to_xyz(PRIMARIES["srgb"][0]) @ np.ones(3))
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _de2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 (Sharma, Wu and Dalal 2005) between rows of two ``(N, 3)`` Lab arrays."""
    (l1, a1, b1), (l2, a2, b2) = lab1.T, lab2.T
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1, a2 = a1 * (1 + g), a2 * (1 + g)
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    dh = np.where(c1 * c2 == 0, 0, ((h2 - h1 + 180) % 360) - 180)
    d_l, d_c, d_h = l2 - l1, c2 - c1, 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_mean, c_bar = (l1 + l2) / 2, (c1 + c2) / 2
    h_sum = np.where(np.abs(h1 - h2) > 180, h1 + h2 + 360, h1 + h2)
    h_mean = np.where(c1 * c2 == 0, h1 + h2, h_sum / 2)
    cos = np.cos
    t = (1 - 0.17 * cos(np.radians(h_mean - 30)) + 0.24 * cos(np.radians(2 * h_mean))
         + 0.32 * cos(np.radians(3 * h_mean + 6))
         - 0.20 * cos(np.radians(4 * h_mean - 63)))  # fmt: skip
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_bar, 1 + 0.015 * c_bar * t
    r_t = (-2 * np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7))
           * np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))))  # fmt: skip
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2
                   + r_t * (d_c / s_c) * (d_h / s_h))  # fmt: skip


def test_de2000_matches_sharmas_published_pairs():
    pairs = [  # Sharma et al. 2005, table 1: pairs 1, 7 and 17
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ]
    lab1, lab2, expected = (np.array(column) for column in zip(*pairs, strict=True))
    assert _de2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)


def _chart() -> np.ndarray:
    """The colour chart: ``(8, 31, 3)`` uint8 sRGB, 216 patches of 6 levels a channel and a
    32-step grey ramp (248 patches)."""
    levels = np.linspace(0, 255, 6).round()
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    grey = np.repeat(np.linspace(0, 255, 32).round()[:, None], 3, axis=1)
    return np.concatenate([cube, grey]).astype(np.uint8).reshape(8, 31, 3)


def _tensor(array: np.ndarray) -> torch.Tensor:
    top = 255 if array.dtype == np.uint8 else 65535
    return torch.from_numpy(array.astype(np.float32) / top).permute(2, 0, 1)[None]


def _back_to_srgb(array: np.ndarray, icc: bytes, intent) -> np.ndarray:
    """An 8-bit image in profile ``icc`` converted back to sRGB with LittleCMS."""
    back = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.ImageCmsProfile(io.BytesIO(SRGB_ICC)),
        "RGB",
        "RGB",
        renderingIntent=intent,
    )
    return np.asarray(ImageCms.applyTransform(Image.fromarray(array, "RGB"), back))


@pytest.mark.parametrize("name", ["adobe-rgb", "display-p3"])
@pytest.mark.parametrize("intent", ["perceptual", "relative"])
def test_an_8_bit_round_trip_keeps_the_colours(tmp_path, name, intent):
    chart = _chart()
    path = tmp_path / "chart.png"
    save_image(_tensor(chart), path, OutputOptions(profile=name, intent=intent))
    with Image.open(path) as img:
        written, icc = np.asarray(img), img.info["icc_profile"]
    assert icc == output_profile(name).icc
    assert not np.array_equal(written, chart)  # converted: the numbers differ …
    lcms_intent = {"perceptual": 0, "relative": 1}[intent]
    back = _back_to_srgb(written, icc, lcms_intent)  # … the colours do not
    reference = _lab(_xyz(chart.reshape(-1, 3) / 255, "srgb"))
    de2000 = _de2000(reference, _lab(_xyz(back.reshape(-1, 3) / 255, "srgb")))
    de76 = np.linalg.norm(reference - _lab(_xyz(back.reshape(-1, 3) / 255, "srgb")), axis=1)
    assert de2000.max() < 0.75 and de2000.mean() < 0.15, (de2000.max(), de2000.mean())
    assert de76.max() < 1.2 and de76.mean() < 0.3, (de76.max(), de76.mean())
    # and the file's numbers are the profile's own colours (exact maths from the primaries)
    direct = _de2000(reference, _lab(_xyz(written.reshape(-1, 3) / 255, name)))
    assert direct.max() < 0.75 and direct.mean() < 0.2, (direct.max(), direct.mean())


@pytest.mark.parametrize("name", ["adobe-rgb", "display-p3"])
def test_16_bit_conversion_is_as_exact_as_littlecms_and_smooth(tmp_path, name):
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 65536, (100, 100, 3), dtype=np.uint16)
    path = tmp_path / "o.tif"
    save_image(_tensor(colours), path, OutputOptions(bit_depth=16, profile=name))
    with tifffile.TiffFile(path) as tif:
        written = tif.pages[0].asarray()
        assert written.dtype == np.uint16
        assert tif.pages[0].tags["InterColorProfile"].value == output_profile(name).icc
    reference = _lab(_xyz(colours.reshape(-1, 3) / 65535, "srgb"))
    de2000 = _de2000(reference, _lab(_xyz(written.reshape(-1, 3) / 65535, name)))
    assert de2000.max() < 1.2 and de2000.mean() < 0.2, (de2000.max(), de2000.mean())
    ramp = np.repeat(np.arange(0, 65536, 16, dtype=np.uint16)[None, :, None], 3, axis=2)
    converted = convert(ramp, output_profile(name))
    assert (np.diff(converted[0].astype(np.int64), axis=0) >= 0).all()  # monotonic
    assert len(np.unique(converted[0, :, 1])) > 2000  # 16-bit steps, not 256 levels


def test_the_built_in_profiles_put_the_primaries_where_published():
    primaries = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]])
    expected = {  # sRGB's primaries in each space (Photoshop, LittleCMS, colour-science agree)
        "adobe-rgb": [[219, 0, 0], [144, 255, 60], [0, 0, 250], [255, 255, 255], [0, 0, 0]],
        "display-p3": [[234, 51, 35], [117, 251, 76], [0, 0, 245], [255, 255, 255], [0, 0, 0]],
    }
    for name, values in expected.items():
        got = convert(primaries.astype(np.uint8), output_profile(name)).astype(int)
        assert np.abs(got - np.array([values])).max() <= 1, (name, got)
    assert output_profile("adobe-rgb").description == "Compatible with Adobe RGB (1998)"
    assert output_profile("display-p3").description == "Display P3"
    assert output_profile("srgb").is_srgb and output_profile("SRGB").icc == SRGB_ICC


def _littlecms_rgb_profile(primaries, curve_type: int, params, description: str) -> bytes:
    """What ``cmsCreateRGBProfile`` makes of the published numbers (how the built-in profiles
    were made), its creation date fixed as :data:`SRGB_ICC`'s."""
    lcms = ctypes.CDLL(ctypes.util.find_library("lcms2"))

    class XyY(ctypes.Structure):
        _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("Y", ctypes.c_double)]

    voidp = ctypes.c_void_p
    lcms.cmsBuildParametricToneCurve.restype = voidp
    lcms.cmsBuildParametricToneCurve.argtypes = [voidp, ctypes.c_int, ctypes.c_void_p]
    lcms.cmsCreateRGBProfile.restype = voidp
    lcms.cmsCreateRGBProfile.argtypes = [voidp, voidp, voidp * 3]
    lcms.cmsMLUalloc.restype = voidp
    lcms.cmsMLUsetASCII.argtypes = [voidp, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    lcms.cmsWriteTag.argtypes = [voidp, ctypes.c_uint32, voidp]
    lcms.cmsSaveProfileToMem.argtypes = [voidp, voidp, ctypes.POINTER(ctypes.c_uint32)]
    white = XyY(*D65, 1.0)
    triple = (XyY * 3)(*(XyY(x, y, 1.0) for x, y in primaries))
    curve = lcms.cmsBuildParametricToneCurve(None, curve_type, (ctypes.c_double * 5)(*params))
    handle = lcms.cmsCreateRGBProfile(ctypes.byref(white), triple, (voidp * 3)(curve, curve, curve))
    for tag, text in ((b"desc", description), (b"cprt", "No copyright, use freely")):
        mlu = lcms.cmsMLUalloc(None, 1)
        lcms.cmsMLUsetASCII(mlu, b"en", b"US", text.encode())
        lcms.cmsWriteTag(handle, struct.unpack(">I", tag)[0], mlu)
    size = ctypes.c_uint32(0)
    lcms.cmsSaveProfileToMem(handle, None, ctypes.byref(size))
    buffer = ctypes.create_string_buffer(size.value)
    lcms.cmsSaveProfileToMem(handle, buffer, ctypes.byref(size))
    data = bytearray(buffer.raw[: size.value])
    data[24:36] = SRGB_ICC[24:36]
    return bytes(data)


@pytest.mark.skipif(ctypes.util.find_library("lcms2") is None, reason="no system LittleCMS")
def test_the_built_in_profiles_are_what_littlecms_makes_of_the_published_numbers():
    srgb_curve = [2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045]
    adobe = PRIMARIES["adobe-rgb"][0], 1, [563 / 256, 0, 0, 0, 0]
    p3 = PRIMARIES["display-p3"][0], 4, srgb_curve
    made_adobe = _littlecms_rgb_profile(*adobe, "Compatible with Adobe RGB (1998)")
    made_p3 = _littlecms_rgb_profile(*p3, "Display P3")
    assert made_adobe[128:] == ADOBE_RGB_ICC[128:]  # the tags: the same numbers
    assert made_p3[128:] == DISPLAY_P3_ICC[128:]  # (the header names the library's version)


def test_a_profile_file_is_converted_into_and_embedded(tmp_path):
    icc = tmp_path / "paper.icc"
    icc.write_bytes(DISPLAY_P3_ICC)
    out = tmp_path / "o.jpg"
    save_image(_tensor(_chart()), out, OutputOptions(profile=str(icc)))
    with Image.open(out) as img:
        assert img.info["icc_profile"] == DISPLAY_P3_ICC
    assert output_profile(icc).name == "paper.icc"


def test_profiles_that_cannot_be_written_are_refused(tmp_path):
    cmyk = bytearray(SRGB_ICC)
    cmyk[16:20] = b"CMYK"
    (tmp_path / "press.icc").write_bytes(bytes(cmyk))
    (tmp_path / "junk.icc").write_bytes(b"not a profile")
    out = tmp_path / "o.png"
    cases = [
        ("cmyk", "use one of srgb, adobe-rgb, display-p3 or a FILE.icc"),
        (str(tmp_path / "press.icc"), "stylecascade writes RGB files only; send RGB"),
        (str(tmp_path / "junk.icc"), "not an ICC profile"),
        (str(tmp_path / "missing.icc"), "missing.icc"),
    ]
    for profile, message in cases:
        with pytest.raises(UsageError, match=message) as caught:
            check_output(out, OutputOptions(profile=profile))
        assert caught.value.argument == "profile"
    with pytest.raises(UsageError, match="intent must be one of perceptual, relative"):
        check_output(out, OutputOptions(intent="saturation"))


@pytest.mark.parametrize("fmt", ["o.png", "o16.png", "o.tif", "o16.tif", "o.jpg"])
def test_the_embedded_profile_is_read_back_by_littlecms(tmp_path, fmt):
    bits = 16 if "16" in fmt else 8
    path = tmp_path / fmt
    save_image(_tensor(_chart()), path, OutputOptions(bit_depth=bits, profile="adobe-rgb"))
    if fmt.endswith(".tif"):
        with tifffile.TiffFile(path) as tif:
            icc = tif.pages[0].tags["InterColorProfile"].value
    else:
        with Image.open(path) as img:
            icc = img.info["icc_profile"]
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
    assert profile.profile_description == "Compatible with Adobe RGB (1998)"
    assert icc == ADOBE_RGB_ICC


TIFF_TAGS = {"none": 1, "lzw": 5, "deflate": 8}


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("compression", ["none", "lzw", "deflate"])
def test_tiff_compression_is_written_and_read_back(tmp_path, bits, compression):
    image = torch.rand(1, 3, 40, 50, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "o.tif"
    options = OutputOptions(bit_depth=bits, dpi=300, compression=compression)
    try:
        import imagecodecs  # noqa: F401  (tifffile's LZW)
    except ImportError:
        if compression == "lzw" and bits == 16:
            with pytest.raises(UsageError, match="needs the imagecodecs package"):
                check_output(path, options)
            return
    check_output(path, options)
    save_image(image, path, options, {"Software": "stylecascade test", "stylecascade:seed": "7"})
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.tags["Compression"].value == TIFF_TAGS[compression]
        assert page.tags["XResolution"].value == (300, 1)
        assert json.loads(page.description)["stylecascade:seed"] == "7"
        assert page.dtype == (np.uint8 if bits == 8 else np.uint16)
        if compression != "lzw":  # tifffile decodes LZW with imagecodecs only
            assert np.array_equal(page.asarray(), quantize(image, bits))
    if bits == 8:
        with Image.open(path) as img:
            assert np.array_equal(np.asarray(img), quantize(image, 8))
            assert img.info["dpi"] == pytest.approx((300, 300))


def test_uncompressed_is_the_largest(tmp_path):
    gradient = torch.linspace(0, 1, 200).repeat(1, 3, 100, 1)
    sizes = {}
    for compression in TIFF_TAGS:
        path = tmp_path / f"{compression}.tif"
        save_image(gradient, path, OutputOptions(compression=compression))
        sizes[compression] = path.stat().st_size
    assert sizes["none"] >= 200 * 100 * 3 > max(sizes["lzw"], sizes["deflate"])
    with pytest.raises(UsageError, match="compression must be one of none, lzw, deflate"):
        check_output(tmp_path / "o.tif", OutputOptions(compression="jpeg"))
