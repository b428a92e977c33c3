"""How the coarsest stage starts: each ``init`` gives the colours and structure it promises."""

import pytest
import torch
from stylecascade.stages.color import luminance
from stylecascade.stages.initial import initial_image
from stylecascade.stages.resample import resize
from stylecascade.stages.vocabulary import INITS


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return (a @ b / (a.norm() * b.norm())).item()


def _high_pass(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    return image - resize(resize(image, (h // 8, w // 8)), (h, w))


def test_every_init_the_presets_allow_is_known(content_image, style_image):
    for init in INITS:
        start = initial_image(init, content_image, style_image)
        assert start == "noise" if init == "noise" else start.shape[1] == 3
    with pytest.raises(ValueError, match="unknown init 'sepia'"):
        initial_image("sepia", content_image, style_image)


def test_style_stats_takes_the_paintings_colours_and_the_photos_layout(content_image, style_image):
    start = initial_image("style-stats", content_image, style_image)
    assert start.shape == content_image.shape and 0 <= start.min() and start.max() <= 1
    painting_mean = style_image.mean(dim=(2, 3))
    assert torch.allclose(start.mean(dim=(2, 3)), painting_mean, atol=0.03)
    assert not torch.allclose(content_image.mean(dim=(2, 3)), painting_mean, atol=0.03)
    assert _correlation(luminance(start), luminance(content_image)) > 0.8


def test_style_mean_plus_detail_is_the_paintings_mean_and_the_photos_edges(
    content_image, style_image
):
    start = initial_image("style-mean+detail", content_image, style_image)
    assert torch.allclose(start.mean(dim=(2, 3)), style_image.mean(dim=(2, 3)), atol=0.03)
    assert _correlation(_high_pass(start), _high_pass(content_image)) > 0.9
    low = resize(start, (6, 8))  # no photo colour or shading left below the detail octaves
    assert low.std(dim=(2, 3)).max() < content_image.std(dim=(2, 3)).min()
