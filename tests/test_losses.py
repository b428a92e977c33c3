import pytest
import torch
from stylecascade.stages.losses import (
    ContentLoss,
    StyleLoss,
    StyleTransferLoss,
    content_targets,
    gram_matrix,
    style_targets,
    tv_loss,
)

LAYERS = {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0}


def test_gram_matrix_hand_computed():
    # C = 2 channels, H = 1, W = 2 positions: F = [[1, 2], [3, 4]]
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram_matrix(features)[0], expected)


def test_gram_matrix_is_float32_for_half_inputs():
    assert gram_matrix(torch.rand(1, 4, 3, 3).half()).dtype == torch.float32


def test_gram_is_independent_of_image_size():
    # Tiling a feature map 3×2 times gives the same statistics, hence the same Gram matrix.
    features = torch.randn(1, 8, 5, 7)
    torch.testing.assert_close(gram_matrix(features.repeat(1, 1, 3, 2)), gram_matrix(features))


def test_style_and_content_losses_are_independent_of_image_size():
    features, other = torch.randn(1, 8, 5, 7), torch.randn(1, 8, 5, 7)
    big, big_other = features.repeat(1, 1, 4, 4), other.repeat(1, 1, 4, 4)
    torch.testing.assert_close(
        StyleLoss(gram_matrix(other))(features), StyleLoss(gram_matrix(big_other))(big)
    )
    torch.testing.assert_close(ContentLoss(other)(features), ContentLoss(big_other)(big))


def test_tv_loss_values():
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)).item() == 0.0
    checkerboard = ((torch.arange(8).view(1, 8) + torch.arange(8).view(8, 1)) % 2).float()
    # every horizontal and every vertical neighbour differs by 1: mean 1 + mean 1
    assert tv_loss(checkerboard.expand(1, 3, 8, 8)).item() == pytest.approx(2.0)


def test_tv_loss_is_independent_of_image_size():
    torch.manual_seed(0)
    small, large = tv_loss(torch.rand(1, 3, 64, 64)), tv_loss(torch.rand(1, 3, 512, 512))
    assert small.item() == pytest.approx(
        large.item(), rel=0.03
    )  # E[Δ²] = 1/6 per direction for U(0, 1) noise
    assert large.item() == pytest.approx(1 / 3, rel=0.01)


def _loss(extractor, content, style, **weights):
    layers = dict(LAYERS)
    defaults = dict(content_weight=1.0, style_weight=10.0, tv_weight=0.5)
    defaults.update(weights)
    return StyleTransferLoss(
        extractor,
        content_targets(extractor, content, ["relu2_1"]),
        style_targets(extractor, style, layers),
        {"relu2_1": 1.0},
        layers,
        **defaults,
    )


def test_objective_terms_and_weights(tiny_extractor, content_image, style_image):
    extractor = tiny_extractor([*LAYERS, "relu2_1"])
    terms = _loss(extractor, content_image, style_image)(content_image)
    assert terms.content.item() == 0.0  # the content image matches its own content target
    assert terms.style.item() > 0 and terms.tv.item() > 0
    torch.testing.assert_close(terms.total, terms.content + terms.style + terms.tv)
    doubled = _loss(extractor, content_image, style_image, style_weight=20.0, tv_weight=1.0)(
        content_image
    )
    torch.testing.assert_close(doubled.style, 2 * terms.style)
    torch.testing.assert_close(doubled.tv, 2 * terms.tv)


def test_style_image_has_zero_style_loss_against_itself(tiny_extractor, style_image):
    extractor = tiny_extractor([*LAYERS, "relu2_1"])
    terms = _loss(extractor, style_image, style_image)(style_image)
    assert terms.style.item() == pytest.approx(0.0, abs=1e-9)


def test_layer_weights_are_normalized(tiny_extractor, content_image, style_image):
    extractor = tiny_extractor([*LAYERS, "relu2_1"])
    a = _loss(extractor, content_image, style_image)
    b = StyleTransferLoss(
        extractor,
        content_targets(extractor, content_image, ["relu2_1"]),
        style_targets(extractor, style_image, LAYERS),
        {"relu2_1": 3.0},
        {k: 7.0 for k in LAYERS},
        1.0,
        10.0,
        0.5,
    )
    noise = torch.rand_like(content_image)
    torch.testing.assert_close(a(noise).total, b(noise).total)


def test_zero_layer_weights_are_refused(tiny_extractor, content_image):
    extractor = tiny_extractor(["relu1_1"])
    with pytest.raises(ValueError, match="sum to a positive number"):
        StyleTransferLoss(extractor, {}, {}, {"relu1_1": 0.0}, {"relu1_1": 1.0}, 1, 1, 0)


def test_gram_backward_matches_autograd_of_the_plain_product():
    features = torch.randn(1, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    target = torch.randn(1, 5, 5, dtype=torch.float64)
    (gram_matrix(features).double() - target).pow(2).sum().backward()
    ours = features.grad.clone()
    features.grad = None
    flat = features.reshape(1, 5, 12)
    plain = torch.bmm(flat, flat.transpose(1, 2)) / 60
    (plain - target).pow(2).sum().backward()
    torch.testing.assert_close(ours, features.grad.to(ours.dtype), rtol=1e-5, atol=1e-6)
