import pytest
import torch
from stylecascade.stages.optim import optimize


def _problem():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 16, 16)
    image = torch.rand(1, 3, 16, 16).requires_grad_(True)
    losses = []

    def objective():
        loss = ((image - target) ** 2).mean() + (image.mean() - 0.5) ** 2
        losses.append(loss.item())
        scaled = loss * image[0, 0].numel()
        scaled.backward()
        return scaled

    return image, target, objective, losses


@pytest.mark.parametrize("name, lr", [("lbfgs", 1.0), ("adam", 0.05)])
def test_optimizers_lower_the_loss(name, lr):
    image, _, objective, losses = _problem()
    seen = []
    count = optimize(image, name, lr, 20, objective, seen.append)
    assert seen == list(range(1, count + 1))
    assert 20 <= count <= 20 + 25  # L-BFGS may finish its last line search
    assert losses[-1] < 0.1 * losses[0]


def test_adam_keeps_pixels_in_range():
    image, _, objective, _ = _problem()
    optimize(image, "adam", 0.5, 10, objective)
    assert image.min().item() >= 0.0 and image.max().item() <= 1.0


def test_lbfgs_is_independent_of_the_loss_scale():
    # Scaling the objective by 1e6 must not change the path of L-BFGS (line search, not raw steps).
    results = []
    for scale in (1.0, 1e6):
        image, target, _, _ = _problem()

        def scaled(s=scale, image=image, target=target):
            loss = ((image - target) ** 2).mean() * image[0, 0].numel() * s
            loss.backward()
            return loss

        optimize(image, "lbfgs", 1.0, 15, scaled)
        results.append(image.detach())
    torch.testing.assert_close(results[0], results[1], rtol=1e-3, atol=1e-3)


def test_unknown_optimizer_is_refused():
    image, _, objective, _ = _problem()
    with pytest.raises(ValueError, match="lbfgs, adam|'lbfgs', 'adam'"):
        optimize(image, "sgd", 0.1, 5, objective)
