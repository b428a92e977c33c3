import pytest
import torch
from stylecascade.stages.resample import fit_long_edge, resize, resize_long_edge


@pytest.mark.parametrize(
    "hw, long_edge, expected",
    [
        ((768, 1024), 256, (192, 256)),
        ((1528, 1200), 512, (512, 402)),
        ((10, 10), 3, (3, 3)),
        ((1, 1000), 10, (1, 10)),
    ],
)
def test_fit_long_edge(hw, long_edge, expected):
    assert fit_long_edge(*hw, long_edge) == expected


def test_resize_keeps_constant_images_and_range():
    flat = torch.full((1, 3, 30, 40), 0.25)
    torch.testing.assert_close(resize(flat, (90, 120)), torch.full((1, 3, 90, 120), 0.25))
    torch.testing.assert_close(resize(flat, (7, 9)), torch.full((1, 3, 7, 9), 0.25))
    edges = (torch.rand(1, 3, 16, 16) > 0.5).float()  # hard edges make bicubic overshoot
    up = resize(edges, (64, 64))
    assert up.min().item() >= 0.0 and up.max().item() <= 1.0


def test_upsampling_stays_in_float():
    image = torch.rand(1, 3, 16, 16)
    up = resize(image, (48, 48))
    levels = up * 255
    assert not torch.allclose(levels, levels.round())  # not quantized to 8 bits
    assert up.dtype == torch.float32


def test_downsampling_is_antialiased():
    # A 1-px checkerboard averages to flat grey when shrunk 4×, instead of aliasing.
    board = ((torch.arange(64).view(1, 64) + torch.arange(64).view(64, 1)) % 2).float()
    small = resize(board.expand(1, 3, 64, 64), (16, 16))
    assert (small - 0.5).abs().max().item() < 0.05


def test_resize_long_edge_shape():
    assert resize_long_edge(torch.rand(1, 3, 30, 40), 20).shape == (1, 3, 15, 20)
