import pytest
import torch
from stylecascade.stages.blend import painting_regions
from stylecascade.stages.gram import GRAM, gram_matrix
from stylecascade.stages.guides import Region
from stylecascade.stages.losses import (
    ContentTerm,
    StyleTerm,
    as_floats,
    relative_error,
    total,
    tv_loss,
)
from stylecascade.stages.terms import TermContext, build_objective, weighted_terms

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

    def score(term, target, features):
        if term is StyleTerm:
            region = Region(1.0, {"x": 1.0}, {"x": GRAM.represent(target, None, 1.0)})
            made = StyleTerm("style", 1.0, GRAM, [region], tuple(target.shape[-2:]))
        else:
            made = term.of(term.__name__, 1.0, {"x": 1.0}, {"x": target})
        return made.score(made.representations({"x": features}))

    torch.testing.assert_close(score(StyleTerm, other, features), score(StyleTerm, big_other, big))
    torch.testing.assert_close(
        score(ContentTerm, other, features), score(ContentTerm, big_other, big)
    )


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


def _loss(extractor, content, style, content_layers=None, style_layers=None, **weights):
    layers = dict(LAYERS)
    defaults = dict(content_weight=1.0, style_weight=10.0, tv_weight=0.5)
    defaults.update(weights)
    context = TermContext(
        extractor,
        content,
        content_layers or {"relu2_1": 1.0},
        painting_regions(extractor, style, style_layers or layers),
    )
    return build_objective(weighted_terms(**defaults), context)


def test_objective_terms_and_weights(tiny_extractor, content_image, style_image):
    extractor = tiny_extractor([*LAYERS, "relu2_1"])
    terms = _loss(extractor, content_image, style_image)(content_image)
    assert list(terms) == ["content", "style", "tv"]
    assert terms["content"].item() == 0.0  # the content image matches its own content target
    assert terms["style"].item() > 0 and terms["tv"].item() > 0
    torch.testing.assert_close(total(terms), terms["content"] + terms["style"] + terms["tv"])
    assert as_floats(terms)["total"] == pytest.approx(total(terms).item())
    doubled = _loss(extractor, content_image, style_image, style_weight=20.0, tv_weight=1.0)(
        content_image
    )
    torch.testing.assert_close(doubled["style"], 2 * terms["style"])
    torch.testing.assert_close(doubled["tv"], 2 * terms["tv"])


def test_style_image_has_zero_style_loss_against_itself(tiny_extractor, style_image):
    extractor = tiny_extractor([*LAYERS, "relu2_1"])
    terms = _loss(extractor, style_image, style_image)(style_image)
    assert terms["style"].item() == pytest.approx(0.0, abs=1e-9)


def test_layer_weights_are_normalized(tiny_extractor, content_image, style_image):
    extractor = tiny_extractor([*LAYERS, "relu2_1"])
    a = _loss(extractor, content_image, style_image)
    b = _loss(
        extractor,
        content_image,
        style_image,
        content_layers={"relu2_1": 3.0},
        style_layers={k: 7.0 for k in LAYERS},
    )
    noise = torch.rand_like(content_image)
    torch.testing.assert_close(total(a(noise)), total(b(noise)))


def test_zero_layer_weights_are_refused(tiny_extractor, content_image, style_image):
    extractor = tiny_extractor([*LAYERS, "relu2_1"])
    with pytest.raises(ValueError, match="sum to a positive number"):
        _loss(extractor, content_image, style_image, content_layers={"relu2_1": 0.0})


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


def test_gram_matrix_under_bf16_autocast_is_float32_and_differentiable():
    features = torch.randn(1, 6, 5, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features.bfloat16())
    assert gram.dtype == torch.float32
    gram.sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_relative_error_weighs_layers_of_any_scale_alike():
    target = torch.randn(1, 4, 4)
    guess = target + 0.1 * torch.randn(1, 4, 4)
    # The same relative mismatch at activations 10⁴× larger scores the same.
    torch.testing.assert_close(
        relative_error(guess * 1e4, target * 1e4), relative_error(guess, target), rtol=1e-4, atol=0
    )
    expected = (guess - target).pow(2).mean() / target.pow(2).mean()
    torch.testing.assert_close(relative_error(guess, target), expected)
    assert relative_error(target, target).item() == 0.0
