import pytest
import torch
import torch.nn.functional as F
from stylecascade.stages import color, quality
from stylecascade.stages.quality import (
    feature_points,
    luminance,
    pixel_points,
    sliced_wasserstein,
    speckle_density,
)


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gray(lum: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` luminance → ``(1, 3, H, W)`` gray RGB."""
    return lum.expand(1, 3, *lum.shape).contiguous()


def _reference_density(image: torch.Tensor, threshold: float) -> float:
    """Whole-image 3×3 median filter with ``F.unfold``, no chunks."""
    lum = luminance(image)
    windows = F.unfold(F.pad(lum, (1, 1, 1, 1), mode="reflect"), 3)  # (B, 9, H·W)
    median = windows.median(dim=1).values.view_as(lum)
    return ((lum - median).abs() > threshold).sum().item() / lum.numel()


def test_luminance_is_the_color_modules():
    assert luminance is color.luminance
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert luminance(red).shape == (1, 1, 1, 1)
    assert luminance(red).item() == pytest.approx(0.299)


def test_smooth_images_have_no_speckles():
    assert speckle_density(torch.full((1, 3, 16, 16), 0.4)) == 0.0
    ramp = torch.linspace(0, 1, 64).expand(48, 64)  # steps of 1/63
    assert speckle_density(_gray(ramp)) == 0.0
    # noise of ±0.1: any two values differ by at most 0.2 < 0.25
    noise = 0.5 + 0.1 * (2 * torch.rand(32, 32, generator=_seeded()) - 1)
    assert speckle_density(_gray(noise)) == 0.0


@pytest.mark.parametrize(("ground", "speck"), [(0.2, 0.8), (0.8, 0.2)])
def test_isolated_pixels_count_once_each(ground, speck):
    lum = torch.full((16, 20), ground)
    specks = [(0, 0), (0, 9), (5, 5), (10, 15), (15, 19), (13, 2)]  # corners, edge, inside
    for row, col in specks:
        lum[row, col] = speck
    # each speck differs by 0.6 from its neighbourhood's median; its neighbours see one
    # speck among nine values, so their median is the ground and they do not count
    assert speckle_density(_gray(lum)) == len(specks) / (16 * 20)


def test_threshold_is_respected_and_strict():
    lum = torch.full((8, 8), 0.25)
    lum[3, 4] = 0.75  # a difference of 0.5
    image = _gray(lum)
    assert speckle_density(image, threshold=0.45) == 1 / 64
    assert speckle_density(image, threshold=0.55) == 0.0
    assert speckle_density(torch.full((1, 3, 8, 8), 0.3), threshold=0.0) == 0.0  # 0 is not > 0


def test_chunks_match_the_whole_image_filter(monkeypatch):
    image = torch.rand(2, 3, 13, 11, generator=_seeded())
    expected = _reference_density(image, 0.25)
    assert 0.05 < expected < 0.5  # the noise has speckles to count
    assert speckle_density(image) == expected
    monkeypatch.setattr(quality, "CHUNK_PIXELS", 3 * 2 * 11)  # three rows a chunk, halos cut
    assert speckle_density(image) == expected
    monkeypatch.setattr(quality, "CHUNK_PIXELS", 1)  # one row a chunk
    assert speckle_density(image) == expected


@pytest.mark.parametrize(
    ("shape", "threshold", "message"),
    [
        ((3, 8, 8), 0.25, r"must be \(B, 3, H, W\)"),
        ((1, 1, 8, 8), 0.25, r"must be \(B, 3, H, W\)"),
        ((1, 3, 1, 8), 0.25, "at least 2×2"),
        ((1, 3, 8, 8), -0.1, "threshold must be finite and ≥ 0"),
        ((1, 3, 8, 8), float("nan"), "threshold must be finite and ≥ 0"),
    ],
)
def test_speckle_density_rejects(shape, threshold, message):
    with pytest.raises(ValueError, match=message):
        speckle_density(torch.zeros(shape), threshold)


def test_sliced_wasserstein_of_identical_and_permuted_sets_is_zero():
    a = torch.rand(40, 3, generator=_seeded())
    assert sliced_wasserstein(a, a.clone(), generator=_seeded()) == 0.0
    shuffled = a[torch.randperm(40, generator=_seeded(1))]
    assert sliced_wasserstein(a, shuffled, generator=_seeded()) == pytest.approx(0.0, abs=1e-6)
    b = torch.rand(40, 3, generator=_seeded(2))
    b_shuffled = b[torch.randperm(40, generator=_seeded(3))]
    assert sliced_wasserstein(a, b_shuffled, generator=_seeded()) == pytest.approx(
        sliced_wasserstein(a, b, generator=_seeded()), rel=1e-6
    )


def test_sliced_wasserstein_of_a_shift_in_one_dimension_is_its_length():
    a = torch.randn(50, 1, generator=_seeded())
    for shift in (0.7, -0.3):
        assert sliced_wasserstein(a, a + shift, 8) == pytest.approx(abs(shift), abs=1e-5)


def test_sliced_wasserstein_is_symmetric_and_seeded():
    a, b = torch.rand(30, 4, generator=_seeded()), torch.rand(30, 4, generator=_seeded(1))
    first = sliced_wasserstein(a, b, 16, _seeded(5))
    assert sliced_wasserstein(b, a, 16, _seeded(5)) == first
    assert sliced_wasserstein(a, b, 16, _seeded(5)) == first
    assert sliced_wasserstein(a, b, 16, _seeded(6)) != first


def test_sliced_wasserstein_grows_linearly_with_a_shift():
    a = torch.rand(30, 3, generator=_seeded())
    v = torch.tensor([0.1, -0.2, 0.05])
    distances = [sliced_wasserstein(a, a + k * v, 32, _seeded()) for k in (1, 2, 4)]
    assert 0 < distances[0] < distances[1] < distances[2]
    assert distances[2] == pytest.approx(4 * distances[0], rel=1e-4)


def test_sliced_wasserstein_with_different_numbers_of_points():
    # quantile functions: a = 0 on (0, ½], 1 on (½, 1]; b = 0, ½, 1 on thirds of (0, 1]; they
    # differ by ½ on (⅓, ⅔], so W₂² = ¼ · ⅓
    a, b = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.5], [1.0], [0.0]])
    assert sliced_wasserstein(a, b, 4) == pytest.approx((1 / 12) ** 0.5, abs=1e-6)
    points = torch.rand(25, 3, generator=_seeded())
    repeated = points.repeat(3, 1)  # the same distribution
    assert sliced_wasserstein(points, repeated, generator=_seeded()) == pytest.approx(0, abs=1e-6)
    assert sliced_wasserstein(points[:7], points, generator=_seeded()) > 0.0


@pytest.mark.parametrize(
    ("a", "b", "projections", "message"),
    [
        ((5, 3), (5, 2), 8, "must be"),
        ((5,), (5, 1), 8, "must be"),
        ((0, 3), (5, 3), 8, "must not be empty"),
        ((5, 3), (5, 3), 0, "projections must be ≥ 1"),
    ],
)
def test_sliced_wasserstein_rejects(a, b, projections, message):
    with pytest.raises(ValueError, match=message):
        sliced_wasserstein(torch.zeros(a), torch.zeros(b), projections)


def test_feature_points_are_the_positions_in_row_order():
    features = torch.randn(1, 5, 3, 4, generator=_seeded())
    points = feature_points(features)
    assert points.shape == (12, 5)
    assert torch.equal(points[1 * 4 + 2], features[0, :, 1, 2])
    image = torch.rand(1, 3, 4, 6, generator=_seeded())
    assert pixel_points(image, max_points=None).shape == (24, 3)


def test_feature_points_subsample_distinct_positions_by_seed():
    features = torch.arange(2 * 10 * 10, dtype=torch.float32).view(1, 2, 10, 10)
    subset = feature_points(features, max_points=30, generator=_seeded())
    assert subset.shape == (30, 2)
    assert len({tuple(p) for p in subset.tolist()}) == 30
    all_points = {tuple(p) for p in feature_points(features, None).tolist()}
    assert {tuple(p) for p in subset.tolist()} <= all_points
    assert torch.equal(feature_points(features, 30, _seeded()), subset)


@pytest.mark.parametrize(
    ("function", "shape", "max_points", "message"),
    [
        (feature_points, (2, 4, 3, 3), 10, r"\(1, C, H, W\)"),
        (feature_points, (1, 4, 3, 3), 0, "max_points must be ≥ 1"),
        (pixel_points, (1, 4, 3, 3), 10, r"\(1, 3, H, W\)"),
    ],
)
def test_point_sets_reject(function, shape, max_points, message):
    with pytest.raises(ValueError, match=message):
        function(torch.zeros(shape), max_points)
