import pytest
import torch
from stylecascade.stages.distributions import (
    Moments,
    moments,
    relative,
    second_moment,
    sqrtm_psd,
    w2_gaussian,
)
from stylecascade.stages.gram import gram_matrix
from stylecascade.stages.sliced import (
    mixture_quantiles,
    quantile_energy,
    random_directions,
    sliced_wasserstein,
    target_quantiles,
)


def _rotation(c: int, seed: int) -> torch.Tensor:
    """A random orthogonal ``(c, c)`` float64 matrix (QR of a Gaussian one)."""
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(c, c, generator=g, dtype=torch.float64))[0]


def _psd(spectrum: list[float], seed: int = 0) -> torch.Tensor:
    """``Q·diag(spectrum)·Qᵀ`` with a random rotation ``Q``, float64."""
    q = _rotation(len(spectrum), seed)
    return q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T


def _points_as_features(points: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` points as ``(1, C, 1, N)`` feature maps."""
    return points.T[None, :, None, :]


# --- moments ---------------------------------------------------------------------------------


def test_moments_match_torch_cov_and_the_gram_matrix():
    torch.manual_seed(0)
    features = torch.randn(2, 5, 6, 7) * 3 + 1
    m = moments(features)
    points = features.flatten(2)  # (B, C, N)
    assert m.weight.tolist() == [42.0, 42.0]
    torch.testing.assert_close(m.mean, points.mean(-1))
    for b in range(2):
        torch.testing.assert_close(m.covariance[b], torch.cov(points[b], correction=0))
    torch.testing.assert_close(m.second / (5 * m.weight[:, None, None]), gram_matrix(features))


def test_moments_of_tiles_add_up_and_a_binary_guide_selects_positions():
    torch.manual_seed(1)
    features = torch.randn(1, 4, 6, 8)
    whole = moments(features)
    tiles = moments(features[..., :3]) + moments(features[..., 3:])
    for name in ("weight", "first", "second"):
        torch.testing.assert_close(getattr(tiles, name), getattr(whole, name))
    guide = torch.zeros(1, 1, 6, 8)
    guide[..., 2:5, 1:6] = 1
    guided = moments(features, guide)
    alone = moments(features[..., 2:5, 1:6])
    torch.testing.assert_close(guided.mean, alone.mean)
    torch.testing.assert_close(guided.covariance, alone.covariance)


def test_scaled_moments_blend_paintings_as_a_mixture_whatever_their_sizes():
    torch.manual_seed(2)
    a, b = torch.randn(1, 3, 4, 4) + 2, torch.randn(1, 3, 8, 6) - 1
    mixture = moments(a).scaled(0.25) + moments(b).scaled(0.75)
    assert mixture.weight.item() == pytest.approx(1.0)
    torch.testing.assert_close(mixture.mean, 0.25 * a.mean((2, 3)) + 0.75 * b.mean((2, 3)))
    # with weights proportional to the pixel counts, the mixture is the pooled point set
    na, nb = 16, 48
    pooled = moments(a).scaled(na / 64) + moments(b).scaled(nb / 64)
    points = torch.cat([a.flatten(2), b.flatten(2)], dim=-1)[0]
    torch.testing.assert_close(pooled.covariance[0], torch.cov(points, correction=0))


def test_moments_are_float32_for_bfloat16_features():
    m = moments(torch.randn(1, 3, 4, 4).bfloat16(), torch.rand(1, 1, 4, 4))
    assert {m.weight.dtype, m.first.dtype, m.second.dtype, m.covariance.dtype} == {torch.float32}


def test_moments_refuse_a_guide_of_another_size():
    with pytest.raises(ValueError, match="guide must be"):
        moments(torch.randn(1, 3, 4, 4), torch.ones(1, 1, 4, 5))


# --- matrix square root ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spectrum",
    [[4.0, 1.0, 0.25, 9.0, 2.0], [1.0, 1.0, 1.0, 3.0, 3.0], [5.0, 0.0, 0.0, 2.0, 1e-9]],
    ids=["distinct", "repeated", "singular"],
)
def test_sqrtm_psd_matches_the_float64_reference(spectrum):
    # reference: Q·diag(√λ)·Qᵀ from the construction, not from an eigendecomposition
    a = _psd(spectrum, seed=3)
    q = _rotation(len(spectrum), 3)
    expected = q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64).sqrt()) @ q.T
    torch.testing.assert_close(sqrtm_psd(a), expected, atol=1e-7, rtol=1e-7)
    s32 = sqrtm_psd(a.float()[None])
    assert s32.dtype == torch.float32 and s32.shape == (1, 5, 5)
    # from float32 inputs: rounding of ~1e-7·‖A‖ moves a zero eigenvalue's root by its sqrt
    atol = 1e-5 if min(spectrum) > 0.1 else 1e-3
    torch.testing.assert_close(s32[0].double(), expected, atol=atol, rtol=1e-5)


def test_sqrtm_psd_squares_back_for_a_batch_of_covariances():
    torch.manual_seed(4)
    x = torch.randn(3, 16, 40, dtype=torch.float64)
    a = x @ x.mT / 40
    s = sqrtm_psd(a)
    torch.testing.assert_close(s @ s, a)
    torch.testing.assert_close(s, s.mT)
    assert torch.linalg.eigvalsh(s).min() > -1e-12


@pytest.mark.parametrize("spectrum", [[3.0, 1.0, 0.5, 2.0], [2.0, 2.0, 2.0, 0.5]])
def test_sqrtm_psd_gradcheck(spectrum):
    a = _psd(spectrum, seed=5).requires_grad_()
    assert torch.autograd.gradcheck(sqrtm_psd, (a,))


def test_sqrtm_psd_gradient_is_finite_for_a_singular_matrix():
    a = _psd([1.0, 0.0, 0.0, 0.0], seed=6).requires_grad_()
    sqrtm_psd(a).trace().backward()
    assert torch.isfinite(a.grad).all()


def test_sqrtm_psd_refuses_non_square_matrices():
    with pytest.raises(ValueError, match=r"\(B, C, C\)"):
        sqrtm_psd(torch.ones(2, 3, 4))


# --- Wasserstein-2 between Gaussians ---------------------------------------------------------


def _gaussian(c: int, seed: int, rank: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, c, rank or 3 * c, generator=g, dtype=torch.float64)
    return torch.randn(1, c, generator=g, dtype=torch.float64), x @ x.mT / x.shape[-1]


def test_w2_is_zero_for_identical_statistics_and_symmetric():
    mean, cov = _gaussian(6, 7)
    other_mean, other_cov = _gaussian(6, 8)
    assert w2_gaussian(mean, cov, mean, cov).item() == pytest.approx(0.0, abs=1e-10)
    there = w2_gaussian(mean, cov, other_mean, other_cov)
    back = w2_gaussian(other_mean, other_cov, mean, cov)
    assert there.item() > 0.1
    torch.testing.assert_close(there, back)


def test_w2_closed_form_for_diagonal_covariances():
    a, b = torch.tensor([4.0, 1.0, 0.0, 9.0]), torch.tensor([1.0, 1.0, 2.0, 16.0])
    mean, target_mean = torch.tensor([[1.0, 0.0, 0.0, 2.0]]), torch.zeros(1, 4)
    expected = ((a.sqrt() - b.sqrt()) ** 2).sum() + 5.0
    value = w2_gaussian(mean, torch.diag(a)[None], target_mean, torch.diag(b)[None])
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    root = sqrtm_psd(torch.diag(b)[None])
    precomputed = w2_gaussian(mean, torch.diag(a)[None], target_mean, torch.diag(b)[None], root)
    torch.testing.assert_close(precomputed, value)


def test_w2_gradients_are_finite_when_the_covariance_is_singular():
    mean, cov = _gaussian(8, 9, rank=3)  # 3 samples in 8 dimensions: rank 3
    cov[0, 5, :] = cov[0, :, 5] = 0  # and a dead channel
    target_mean, target_cov = _gaussian(8, 10)
    mean, cov = mean.float().requires_grad_(), cov.float().requires_grad_()
    w2_gaussian(mean, cov, target_mean.float(), target_cov.float()).sum().backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(cov.grad).all()
    assert mean.grad.abs().sum() > 0 and cov.grad.abs().sum() > 0


def test_w2_gradcheck_on_mean_and_covariance():
    mean, cov = _gaussian(3, 11)
    target_mean, target_cov = _gaussian(3, 12)
    inputs = (mean.requires_grad_(), cov.requires_grad_())
    assert torch.autograd.gradcheck(
        lambda m, s: w2_gaussian(m, (s + s.mT) / 2, target_mean, target_cov), inputs
    )


def test_relative_w2_is_independent_of_feature_scale_and_pixel_count():
    torch.manual_seed(13)
    image, painting = torch.randn(1, 6, 5, 7), torch.randn(1, 6, 4, 4) * 2 + 1

    def score(image: torch.Tensor, painting: torch.Tensor) -> float:
        m, t = moments(image), moments(painting)
        w2 = w2_gaussian(m.mean, m.covariance, t.mean, t.covariance)
        return relative(w2, second_moment(t.mean, t.covariance)).item()

    reference = score(image, painting)
    assert reference > 0.05
    assert score(100 * image, 100 * painting) == pytest.approx(reference, rel=1e-4)
    assert score(image.repeat(1, 1, 3, 2), painting) == pytest.approx(reference, rel=1e-4)


def test_w2_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="covariances"):
        w2_gaussian(torch.zeros(1, 3), torch.eye(4)[None], torch.zeros(1, 3), torch.eye(3)[None])


# --- sliced Wasserstein ----------------------------------------------------------------------


def test_random_directions_are_reproducible_unit_vectors():
    d = random_directions(7, 5, torch.Generator().manual_seed(0))
    assert d.shape == (5, 7)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(d, random_directions(7, 5, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError):
        random_directions(0, 5)


def test_sliced_wasserstein_is_zero_for_the_same_features_and_sees_no_positions():
    torch.manual_seed(14)
    features = torch.randn(1, 6, 5, 8)
    directions = random_directions(6, 12, torch.Generator().manual_seed(1))
    targets = target_quantiles(features, directions, 40)
    assert sliced_wasserstein(features, directions, targets).item() == pytest.approx(0, abs=1e-7)
    shuffled = features.flatten(2)[..., torch.randperm(40)].view(1, 6, 5, 8)
    other = torch.randn(1, 6, 5, 8) * 1.5
    score, permuted = (sliced_wasserstein(f, directions, targets) for f in (other, shuffled))
    assert score.item() > 0.05 and permuted.item() == pytest.approx(0, abs=1e-7)
    torch.testing.assert_close(
        sliced_wasserstein(
            other.flatten(2)[..., torch.randperm(40)].view(1, 6, 5, 8), directions, targets
        ),
        score,
    )


def test_sliced_wasserstein_of_a_shift_in_one_dimension_is_the_squared_shift():
    # painting: 1000 evenly spread values; image: 250 of them, shifted by 0.3
    painting = torch.linspace(-1, 1, 1000)[:, None]
    image = torch.linspace(-1, 1, 250)[:, None] + 0.3
    direction = torch.ones(1, 1)
    targets = target_quantiles(_points_as_features(painting), direction, 1000)
    loss = sliced_wasserstein(_points_as_features(image), direction, targets)
    assert (loss * quantile_energy(targets)).item() == pytest.approx(0.09, rel=2e-3)
    # direction −1 sees the same shift
    flipped = target_quantiles(_points_as_features(painting), -direction, 300)
    flipped_loss = sliced_wasserstein(_points_as_features(image), -direction, flipped)
    assert (flipped_loss * quantile_energy(flipped)).item() == pytest.approx(0.09, rel=2e-3)


def test_mixture_quantiles_of_two_point_masses():
    zeros, ones = torch.zeros(2, 8), torch.ones(2, 8)
    mixture = mixture_quantiles([zeros, ones], [1.0, 3.0], 8)  # weights 0.25 / 0.75
    assert mixture[0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]
    torch.testing.assert_close(mixture[1], mixture[0])
    # a painting of weight 0 drops out; the average of quantiles would be 0.75 everywhere
    torch.testing.assert_close(mixture_quantiles([zeros, ones], [0.0, 1.0], 5), torch.ones(2, 5))
    with pytest.raises(ValueError):
        mixture_quantiles([zeros, ones], [0.0, 0.0], 8)


def test_mixture_of_paintings_is_the_pooled_painting():
    torch.manual_seed(15)
    a, b = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 12) + 1
    directions = random_directions(3, 4, torch.Generator().manual_seed(2))
    both = torch.cat([a.flatten(2), b.flatten(2)], -1)[..., None]
    pooled = target_quantiles(both, directions, 64)
    mixed = mixture_quantiles(
        [target_quantiles(a, directions, 16), target_quantiles(b, directions, 48)], [1, 3], 64
    )
    torch.testing.assert_close(mixed, pooled)


def test_guides_weigh_positions_on_both_sides():
    torch.manual_seed(16)
    features, painting = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    guide = torch.zeros(1, 1, 6, 6)
    guide[..., :, :3] = 1
    directions = random_directions(4, 6, torch.Generator().manual_seed(3))
    guided = target_quantiles(painting, directions, 18, guide)
    torch.testing.assert_close(guided, target_quantiles(painting[..., :3], directions, 18))
    loss = sliced_wasserstein(features, directions, guided, guide)
    torch.testing.assert_close(loss, sliced_wasserstein(features[..., :3], directions, guided))
    with pytest.raises(ValueError, match="leave at least one position"):
        target_quantiles(painting, directions, 18, torch.zeros(1, 1, 6, 6))


def test_a_guide_of_ones_gives_the_unguided_loss_for_any_target_count():
    torch.manual_seed(19)
    features, painting = torch.randn(2, 3, 5, 6), torch.randn(1, 3, 7, 7)
    directions = random_directions(3, 5, torch.Generator().manual_seed(5))
    for count in (1, 2, 13, 30, 49):
        targets = target_quantiles(painting, directions, count)
        torch.testing.assert_close(
            sliced_wasserstein(features, directions, targets, torch.ones(1, 1, 5, 6)),
            sliced_wasserstein(features, directions, targets),
        )


def test_sliced_wasserstein_gradient_is_finite_and_batched():
    torch.manual_seed(17)
    features = torch.randn(2, 5, 4, 4, requires_grad=True)
    directions = random_directions(5, 10)
    targets = target_quantiles(torch.randn(1, 5, 6, 6), directions, 36)
    loss = sliced_wasserstein(features, directions, targets)
    assert loss.shape == (2,)
    loss.sum().backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def test_relative_sliced_wasserstein_is_independent_of_feature_scale_and_pixel_count():
    torch.manual_seed(18)
    image, painting = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 5, 5) + 1
    directions = random_directions(4, 8, torch.Generator().manual_seed(4))

    def score(image: torch.Tensor, painting: torch.Tensor) -> float:
        targets = target_quantiles(painting, directions, 25)
        return sliced_wasserstein(image, directions, targets).item()

    reference = score(image, painting)
    assert score(100 * image, 100 * painting) == pytest.approx(reference, rel=1e-4)
    assert score(image.repeat(1, 1, 2, 3), painting) == pytest.approx(reference, rel=2e-2)


def test_moments_reject_wrong_rank():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        moments(torch.randn(3, 4, 4))
    assert isinstance(moments(torch.randn(1, 2, 2, 2)), Moments)
