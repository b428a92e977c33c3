import pytest
import torch
from stylecascade.stages.color import (
    color_inputs,
    color_output,
    keep_content_chroma,
    luminance,
    match_color,
    match_luminance,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from stylecascade.stages.resample import resize


def _stats(image):
    pixels = image[0].reshape(3, -1).double()
    mean = pixels.mean(dim=1)
    centred = pixels - mean[:, None]
    return mean, centred @ centred.T / pixels.shape[1]


def _gray(image):
    return luminance(image).expand(-1, 3, -1, -1).contiguous()


def test_ycbcr_round_trip_and_known_values():
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(image)), image, atol=1e-6, rtol=0)
    white = torch.ones(1, 3, 1, 1)
    torch.testing.assert_close(rgb_to_ycbcr(white).flatten(), torch.tensor([1.0, 0.5, 0.5]))


def test_luminance_mode_keeps_the_content_chroma(content_image, style_image):
    stylized = resize(style_image, content_image.shape[-2:])  # an extreme "render": all style
    out = color_output("luminance", stylized, content_image)
    chroma = rgb_to_ycbcr(out)[:, 1:]
    expected = rgb_to_ycbcr(content_image)[:, 1:]
    assert (chroma - expected).abs().mean().item() < 1 / 255
    quantized = (out * 255).round() / 255  # after the 8-bit output too
    assert (rgb_to_ycbcr(quantized)[:, 1:] - expected).abs().mean().item() < 1 / 255
    # and the luminance is the render's
    assert (luminance(out) - luminance(stylized)).abs().mean().item() < 2 / 255


def test_histogram_matches_the_content_mean_and_covariance(content_image, style_image):
    recolored = match_color(style_image, content_image)
    assert recolored.shape == style_image.shape
    mean, cov = _stats(recolored)
    mean_c, cov_c = _stats(content_image)
    torch.testing.assert_close(mean, mean_c, atol=0.01, rtol=0)
    torch.testing.assert_close(cov, cov_c, atol=0.003, rtol=0.1)
    assert not torch.allclose(_stats(style_image)[0], mean_c, atol=0.05)  # it did change


def test_luminance_only_matches_mean_and_std_of_the_content_luminance(content_image, style_image):
    matched = match_luminance(style_image, content_image)
    assert torch.equal(matched[:, 0], matched[:, 1]) and torch.equal(matched[:, 1], matched[:, 2])
    lum, lum_c = luminance(matched), luminance(content_image)
    assert abs(lum.mean().item() - lum_c.mean().item()) < 0.01
    assert abs(lum.std().item() - lum_c.std().item()) < 0.01


@pytest.mark.parametrize("mode", ["none", "luminance", "histogram", "luminance-only"])
@pytest.mark.parametrize("which", ["content", "style"])
def test_grayscale_inputs_work_in_every_mode(mode, which, content_image, style_image):
    content = _gray(content_image) if which == "content" else content_image
    style = _gray(style_image) if which == "style" else style_image
    content_in, (style_in,) = color_inputs(mode, content, [style])
    out = color_output(mode, resize(style_in, content.shape[-2:]), content)
    for image in (content_in, style_in, out):
        assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    if mode == "histogram" and which == "content":
        # a gray content makes the recolored style gray too
        assert (style_in[:, 0] - style_in[:, 1]).abs().max() < 0.01


def test_keep_content_chroma_needs_equal_sizes(content_image, style_image):
    with pytest.raises(ValueError, match="sizes differ"):
        keep_content_chroma(style_image, content_image)


def test_unknown_mode():
    with pytest.raises(ValueError, match="color mode must be one of"):
        color_inputs("sepia", torch.zeros(1, 3, 4, 4), [])
