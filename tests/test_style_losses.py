"""Style losses beyond the Gram matrix as style kinds: W2 between Gaussian fits and the sliced
Wasserstein distance — against float64 references, with blends, masks and tiles, and through
a render."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from stylecascade.cli import app
from stylecascade.errors import UsageError
from stylecascade.preset import TilingConfig
from stylecascade.runner import run_stages
from stylecascade.stages.blend import WeightedStyle
from stylecascade.stages.gram import GRAM
from stylecascade.stages.swd import SWD
from stylecascade.stages.terms import LOSSES, style_kind
from stylecascade.stages.vocabulary import STYLE_KINDS, STYLE_LOSSES
from stylecascade.stages.w2 import W2
from typer.testing import CliRunner

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def _features(seed: int, c: int = 6, h: int = 9, w: int = 7, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(c, c, generator=g)
    flat = mixing @ torch.randn(c, h * w, generator=g) + shift
    return flat.reshape(1, c, h, w).relu()


def _sqrtm64(a: np.ndarray) -> np.ndarray:
    lam, u = np.linalg.eigh((a + a.T) / 2)
    return (u * np.sqrt(np.clip(lam, 0, None))) @ u.T


def _w2_reference(x: torch.Tensor, y: torch.Tensor) -> float:
    """Relative W2² between Gaussian fits of two feature maps, in float64 numpy."""
    a, b = (t[0].flatten(1).double().numpy() for t in (x, y))
    mu_a, mu_b = a.mean(1), b.mean(1)
    cov_a = a @ a.T / a.shape[1] - np.outer(mu_a, mu_a)
    cov_b = b @ b.T / b.shape[1] - np.outer(mu_b, mu_b)
    root = _sqrtm64(cov_b)
    cross = _sqrtm64(root @ cov_a @ root)
    w2 = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * cross)
    return w2 / (mu_b @ mu_b + np.trace(cov_b))


def _score(kind, x, y, guide=None, target_guide=None):
    target = kind.represent(
        y, target_guide, 1.0 if target_guide is None else target_guide.pow(2).mean()
    )
    energy = 1.0 if guide is None else guide.pow(2).mean()
    return kind.score(kind.represent(x, guide, energy), target, target.pow(2).mean())


def test_the_registry_resolves_every_style_kind_presets_name():
    assert STYLE_LOSSES == tuple(STYLE_KINDS) == ("gram", "w2", "swd")
    assert [style_kind(name) for name in STYLE_KINDS] == [GRAM, W2, SWD]
    assert list(LOSSES) == ["content", *STYLE_KINDS, "tv"]
    for name in STYLE_KINDS:
        kind = style_kind(name)
        assert all(callable(getattr(kind, m)) for m in ("represent", "blend", "score"))
        assert isinstance(kind.pooled, bool)


def test_w2_matches_a_float64_reference():
    x, y = _features(0), _features(1, h=11, w=5, shift=0.3)
    assert _score(W2, x, y).item() == pytest.approx(_w2_reference(x, y), rel=1e-4)
    assert _score(W2, y, y).item() == pytest.approx(0.0, abs=1e-5)


def _w2_torch64(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The same relative W2² in float64 torch, differentiated by torch's own ``eigh``
    backward (distinct eigenvalues here): an independent reference for the gradient."""

    def sqrtm(a):
        lam, u = torch.linalg.eigh((a + a.T) / 2)
        return (u * lam.clamp_min(0).sqrt()) @ u.T

    a, b = x[0].flatten(1).double(), y[0].flatten(1).double()
    mu_a, mu_b = a.mean(1), b.mean(1)
    cov_a = a @ a.T / a.shape[1] - torch.outer(mu_a, mu_a)
    cov_b = b @ b.T / b.shape[1] - torch.outer(mu_b, mu_b)
    root = sqrtm(cov_b)
    w2 = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a + cov_b - 2 * sqrtm(root @ cov_a @ root))
    return w2 / (mu_b @ mu_b + torch.trace(cov_b))


def test_w2_gradient_matches_a_float64_reference():
    x, y = _features(2, shift=0.2).requires_grad_(True), _features(3)
    _score(W2, x, y).backward()
    x64 = x.detach().double().requires_grad_(True)
    _w2_torch64(x64, y).backward()
    torch.testing.assert_close(
        x.grad.double(), x64.grad, rtol=1e-3, atol=1e-4 * x64.grad.abs().max().item()
    )


def test_swd_is_zero_for_the_same_features_and_blind_to_their_order():
    x = _features(5)
    assert _score(SWD, x, x).item() == pytest.approx(0.0, abs=1e-7)
    permuted = x.flatten(2)[..., torch.randperm(63, generator=torch.Generator().manual_seed(6))]
    assert _score(SWD, permuted.reshape(x.shape), x).item() == pytest.approx(0.0, abs=1e-7)
    assert _score(SWD, _features(7, shift=1.0), x).item() > 0.01


def test_swd_gradient_is_finite_and_lowers_the_loss():
    x, y = _features(8).requires_grad_(True), _features(9, shift=0.5)
    loss = _score(SWD, x, y)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert _score(SWD, x - 0.05 * x.grad / x.grad.abs().max(), y) < loss


@pytest.mark.parametrize("kind", [W2, SWD], ids=["w2", "swd"])
def test_a_blend_is_the_mixture_of_the_paintings(kind):
    a, b = _features(10, h=8, w=8), _features(11, h=8, w=8, shift=0.7)
    both = torch.cat([a, b], dim=3)  # half the positions from each painting
    blend = kind.blend([(0.5, kind.represent(a, None, 1.0)), (0.5, kind.represent(b, None, 1.0))])
    image = _features(12, h=8, w=16)
    mixed = kind.score(kind.represent(image, None, 1.0), blend, blend.pow(2).mean())
    pooled_target = kind.represent(both, None, 1.0)
    pooled = kind.score(
        kind.represent(image, None, 1.0), pooled_target, pooled_target.pow(2).mean()
    )
    assert mixed.item() == pytest.approx(pooled.item(), rel=1e-4)


@pytest.mark.parametrize("kind", [W2, SWD], ids=["w2", "swd"])
def test_a_binary_mask_takes_only_the_positions_under_it(kind):
    image, painting = _features(13, h=8, w=8), _features(14, h=8, w=8, shift=0.4)
    guide = torch.zeros(1, 1, 8, 8)
    guide[..., :, :4] = 1.0  # the left half
    masked = _score(kind, image, painting, guide=guide)
    left = _score(kind, image[..., :4].contiguous(), painting)
    assert masked.item() == pytest.approx(left.item(), rel=1e-4)


def test_w2_moments_of_an_image_are_the_pixel_weighted_mean_of_its_parts():
    x = _features(15, h=8, w=12)
    left, right = x[..., :5].contiguous(), x[..., 5:].contiguous()
    pooled = (5 * W2.represent(left, None, 1.0) + 7 * W2.represent(right, None, 1.0)) / 12
    torch.testing.assert_close(pooled, W2.represent(x, None, 1.0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["w2", "swd"])
def test_a_cascade_lowers_each_loss_with_masks_and_a_blend(
    tiny_extractor, tiny_preset, content_image, style_image, kind
):
    model = dataclasses.replace(tiny_preset.model, style_loss=kind)
    preset = dataclasses.replace(tiny_preset, model=model)
    mask = torch.zeros(1, 1, 48, 64)
    mask[..., :24, :] = 1.0  # the sky
    styles = [WeightedStyle(style_image, 2.0, mask=mask), WeightedStyle(style_image.flip(-1))]
    results = list(run_stages(tiny_extractor(LAYERS), preset, content_image, styles))
    assert [r.stage.terms[1].loss for r in results] == [kind, kind]
    for result in results:
        assert result.loss_end["style"] < result.loss_start["style"]


def test_swd_refuses_tiled_stages_in_one_line(
    tiny_extractor, tiny_preset, content_image, style_image
):
    model = dataclasses.replace(tiny_preset.model, style_loss="swd")
    preset = dataclasses.replace(
        tiny_preset, model=model, tiling=TilingConfig(tile_edge=48, overlap=16)
    )
    with pytest.raises(
        UsageError,
        match=r"stage 2 \(64×48 px\) is larger than the tile size 48 px, "
        r"and style_loss swd cannot run in tiles; use style_loss: w2",
    ):
        list(
            run_stages(tiny_extractor(LAYERS), preset, content_image, [WeightedStyle(style_image)])
        )


def test_a_render_with_w2_and_a_stage_with_swd(photos, tmp_path, tiny_preset_file):
    text = tiny_preset_file.read_text().replace(
        "  pooling: avg\n", "  pooling: avg\n  style_loss: w2\n"
    )
    text = text.replace("{size: 64, iterations: 6}", "{size: 64, iterations: 6, style_loss: swd}")
    tiny_preset_file.write_text(text)
    out = tmp_path / "o.png"
    args = ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file),
            "-o", str(out), "--device", "cpu", "-q"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["preset"]["model"]["style_loss"] == "w2"
    assert [s["style_loss"] for s in manifest["preset"]["stages"]] == [None, "swd"]
    assert [s["terms"]["style"]["kind"] for s in manifest["stages"]] == ["w2", "swd"]
    assert all(s["loss_end"]["style"] < s["loss_start"]["style"] for s in manifest["stages"])
