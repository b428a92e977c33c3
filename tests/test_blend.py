import pytest
import torch
from stylecascade.stages import blend
from stylecascade.stages.blend import (
    WeightedStyle,
    blended_targets,
    normalize_weights,
    style_targets,
)
from stylecascade.stages.quality import speckle_density
from stylecascade.stages.resample import resize, resize_long_edge

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


@pytest.fixture
def extractor(tiny_extractor):
    return tiny_extractor(LAYERS)


def _alone(extractor, image, edge=64):
    return style_targets(extractor, blend.style_image(WeightedStyle(image), edge), LAYERS)


def test_weights_one_and_zero_give_exactly_the_single_style_targets(
    extractor, style_image, content_image
):
    blend = blended_targets(
        extractor, [WeightedStyle(style_image, 1.0), WeightedStyle(content_image, 0.0)], 64, LAYERS
    )
    alone = _alone(extractor, style_image)
    for layer in LAYERS:
        assert torch.equal(blend[layer], alone[layer])


def test_blend_is_the_weighted_sum_of_gram_matrices(extractor, style_image, content_image):
    blend = blended_targets(
        extractor, [WeightedStyle(style_image, 3.0), WeightedStyle(content_image, 7.0)], 64, LAYERS
    )
    a, b = _alone(extractor, style_image), _alone(extractor, content_image)
    for layer in LAYERS:
        torch.testing.assert_close(blend[layer], 0.3 * a[layer] + 0.7 * b[layer])
        assert not torch.allclose(blend[layer], a[layer])


def test_the_same_image_twice_equals_that_image_alone(extractor, style_image):
    twice = blended_targets(
        extractor, [WeightedStyle(style_image), WeightedStyle(style_image)], 64, LAYERS
    )
    alone = _alone(extractor, style_image)
    for layer in LAYERS:
        assert torch.equal(twice[layer], alone[layer])


def test_each_style_is_resized_on_its_own(extractor, style_image):
    # A painting given at twice the pixel size contributes at the same scale (40 px: under
    # both paintings' grain limit).
    big = resize(style_image, (style_image.shape[-2] * 2, style_image.shape[-1] * 2))
    small, large = (
        blended_targets(extractor, [WeightedStyle(image)], 40, LAYERS)
        for image in (style_image, big)
    )
    for layer in LAYERS:
        torch.testing.assert_close(small[layer], large[layer], rtol=0.05, atol=1e-4)


def test_scale_multiplies_the_style_size(extractor, style_image):
    scaled = blended_targets(extractor, [WeightedStyle(style_image, scale=0.5)], 64, LAYERS)
    half = _alone(extractor, style_image, edge=32)
    for layer in LAYERS:
        assert torch.equal(scaled[layer], half[layer])


def test_style_image_is_the_plain_resize_below_the_grain_limit():
    painting = torch.rand(1, 3, 300, 400, generator=torch.Generator().manual_seed(0))
    sharpest = round(400 / blend.GRAIN_FACTOR)  # 283 px
    for edge in (64, sharpest):
        assert torch.equal(
            blend.style_image(WeightedStyle(painting), edge), resize_long_edge(painting, edge)
        )


def test_style_image_drops_the_grain_of_a_painting_at_its_native_size():
    # Pixel noise over a flat grey: at native size every other pixel is an outlier; the
    # band-limited painting keeps its size and mean but not the grain.
    noise = torch.rand(1, 3, 200, 300, generator=torch.Generator().manual_seed(1))
    painting = (0.5 + 0.8 * (noise - 0.5)).clamp(0, 1)
    assert speckle_density(painting) > 0.1
    for edge, scale in ((300, 1.0), (150, 2.0), (450, 1.0)):
        image = blend.style_image(WeightedStyle(painting, scale=scale), edge)
        assert max(image.shape[-2:]) == round(edge * scale)
        assert speckle_density(image) < 1e-3
        assert abs(image.mean().item() - painting.mean().item()) < 0.01


def test_normalize_weights():
    assert normalize_weights([1, 3]) == [0.25, 0.75]
    for bad, message in (
        ([], "at least one"),
        ([1, -1], "≥ 0"),
        ([0, 0], "not all be 0"),
        ([float("nan")], "finite"),
    ):
        with pytest.raises(ValueError, match=message):
            normalize_weights(bad)
