"""Yardsticks that score any stylized image against its photo and painting, whichever tool made
it (used by ``peers.py``).

- ``content``: MSE of relu4_2 activations against the photo's at the image's size (Gatys et al.
  2016, Eq. 1, as a mean); lower keeps more of the photo's layout.
- ``gram``: mean over relu1_1 … relu5_1 of the MSE of Gram matrices (normalized by C·H·W)
  against the painting's at the same long edge, as an absolute error (relu4_1 and relu5_1
  dominate it; our style loss weighs layers by relative error).
- ``swd_features``: sliced Wasserstein distance (Rabin et al. 2011; Heitz et al. 2021) of the
  feature vectors at relu1_1 … relu4_1 to the painting's, each divided by the photo's own
  distance to the painting, then averaged: 1 = no closer to the painting than the photo; 0 =
  the painting's feature distribution. Neutral to every tool's loss.
- ``swd_colour``: the same ratio for the pixel colours (RGB, 0–1).
- ``swd_features_512``: ``swd_features`` with the image first resized to :data:`ANALYSIS_EDGE`
  px (the painting and photo too): every final size scored at one scale, so that a render at
  1024 or 2048 px is compared with a 512 px one on the same strokes (style fading with size).
- ``swd_features_band``: ``swd_features`` against the painting no sharper than its own pixels
  ÷ √2 (``stages.blend.style_image``, what our renders use): above that the painting's capture
  grain (speckle density 0.113 at the bundled Starry Night's native 1024 px) dominates relu1_1
  and relu2_1, and a render is scored on copying it.
- ``speckle``: :func:`stylecascade.stages.quality.speckle_density` (fraction of pixels whose
  luminance differs from their 3×3 median by more than 0.25).
- ``texture_1to1``: the texture under the eye at print size (issue 34). :data:`CROPS` crops of
  :data:`CROP` px of the image at its own size and as many of the painting at *its* own size
  (neither resized; seeded positions), their feature vectors at :data:`TEXTURE_LAYERS`
  (relu1_1 … relu3_1) pooled over the crops; per layer the sliced Wasserstein distance to the
  painting's, divided by the photo's (resized to the image's size, the image's crop
  positions), averaged over the layers. 1 = no closer than the photo; lower = strokes and
  canvas at the painting's own pixel scale. The baseline is the photo *at the image's size*,
  so compare methods at one size, not sizes with each other.

Scoring files: ``python benchmarks/yardsticks.py IMAGE … [--photo P] [--painting P]
[--json PATH]`` (default pair: ``examples/tubingen.jpg`` × ``examples/starry_night.jpg``).

Real (Caffe) VGG19, max pooling, on the CPU or the given device; every distance uses the same
seeded projections so that scores of different images are comparable.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from stylecascade.images import load_image
from stylecascade.stages.blend import WeightedStyle, style_image
from stylecascade.stages.gram import gram_matrix
from stylecascade.stages.quality import (
    feature_points,
    pixel_points,
    sliced_wasserstein,
    speckle_density,
)
from stylecascade.stages.resample import resize, resize_long_edge
from stylecascade.stages.vgg import VGGFeatures
from stylecascade.weights import load_weights

CONTENT_LAYER = "relu4_2"
GRAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SWD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
PROJECTIONS = 256
SEED = 0
NAMES = (
    "content",
    "gram",
    "swd_features",
    "swd_colour",
    "speckle",
    "swd_features_512",
    "swd_features_band",
    "texture_1to1",
)
ANALYSIS_EDGE = 512
TEXTURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
CROP = 256
"""Edge of a ``texture_1to1`` crop in px (smaller where the image or painting is smaller)."""
CROPS = 16
"""Crops per image for ``texture_1to1``: 16 × 256² = 1 048 576 positions at relu1_1, of which
:func:`feature_points` keeps a seeded 65 536."""
ROOT = Path(__file__).resolve().parent.parent
PHOTO, PAINTING = ROOT / "examples" / "tubingen.jpg", ROOT / "examples" / "starry_night.jpg"


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Sliced Wasserstein distance with the same projections for every pair."""
    return sliced_wasserstein(a, b, PROJECTIONS, _generator())


def crop_corners(
    size: tuple[int, int], edge: int, count: int, generator: torch.Generator
) -> list[tuple[int, int]]:
    """``count`` seeded ``(top, left)`` corners of ``edge``-px square crops inside an image of
    ``size`` ``(H, W)`` px (``edge ≤ min(H, W)``), uniform over the valid positions."""
    height, width = size
    tops = torch.randint(0, height - edge + 1, (count,), generator=generator)
    lefts = torch.randint(0, width - edge + 1, (count,), generator=generator)
    return list(zip(tops.tolist(), lefts.tolist(), strict=True))


class Yardsticks:
    """Scores images of one photo–painting pair (see the module docstring).

    Args:
        content: ``(1, 3, H, W)`` the photo in 0–1 (any size; resized to each image's size).
        style: ``(1, 3, h, w)`` the painting in 0–1 (resized to each image's long edge).
        device: where the network runs.
    """

    def __init__(self, content: torch.Tensor, style: torch.Tensor, device: torch.device) -> None:
        weights = load_weights("caffe")
        layers = (*GRAM_LAYERS, CONTENT_LAYER)
        self.net = VGGFeatures(weights.trunk, layers, "max", weights.normalization, True)
        self.net = self.net.to(device).eval()
        self.shallow = VGGFeatures(weights.trunk, TEXTURE_LAYERS, "max", weights.normalization)
        self.shallow = self.shallow.to(device).eval()
        self.content, self.style, self.device = content, style, device

    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.net(image.to(self.device))

    def _points(self, features: torch.Tensor) -> torch.Tensor:
        return feature_points(features.cpu(), generator=_generator())

    def _relative(self, ours: dict, ref: dict, theirs: dict, layers: tuple[str, ...]) -> float:
        """Mean over ``layers`` of the SWD of ``ours``' feature points to ``theirs``' divided by
        ``ref``'s (``{layer: (1, C, H, W)}`` each)."""
        ratios = []
        for layer in layers:
            target = self._points(theirs[layer])
            mine, base = (_distance(self._points(f[layer]), target) for f in (ours, ref))
            ratios.append(mine / base)
        return sum(ratios) / len(ratios)

    def _swd_features(self, image: torch.Tensor, painting: torch.Tensor) -> float:
        """Mean over :data:`SWD_LAYERS` of the image's feature SWD to ``painting`` divided by
        the photo's (both at the image's size)."""
        photo = resize(self.content, tuple(image.shape[-2:]))
        ours, ref, theirs = map(self._features, (image, photo, painting))
        return self._relative(ours, ref, theirs, SWD_LAYERS)

    def _crop_features(
        self, image: torch.Tensor, corners: list[tuple[int, int]], edge: int
    ) -> dict[str, torch.Tensor]:
        """``{layer: (1, C, n·h, w)}``: :data:`TEXTURE_LAYERS` of each ``edge``-px crop of
        ``image`` (``(1, 3, H, W)``, 0–1) at ``corners``, stacked along the height."""
        maps: dict[str, list[torch.Tensor]] = {layer: [] for layer in TEXTURE_LAYERS}
        for top, left in corners:
            crop = image[..., top : top + edge, left : left + edge].to(self.device)
            with torch.no_grad():
                features = self.shallow(crop)
            for layer in TEXTURE_LAYERS:
                maps[layer].append(features[layer].cpu())
        return {layer: torch.cat(found, dim=2) for layer, found in maps.items()}

    def texture_1to1(self, image: torch.Tensor) -> float:
        """``texture_1to1`` of ``(1, 3, H, W)`` ``image`` in 0–1 (module docstring): crops of
        the image, of the photo at the image's size (same corners) and of the painting at its
        own size, none resized."""
        size, native = tuple(image.shape[-2:]), tuple(self.style.shape[-2:])
        edge = min(CROP, *size, *native)
        generator = _generator()
        here = crop_corners(size, edge, CROPS, generator)
        there = crop_corners(native, edge, CROPS, generator)
        photo = resize(self.content, size)
        ours, ref = (self._crop_features(x, here, edge) for x in (image, photo))
        theirs = self._crop_features(self.style, there, edge)
        return self._relative(ours, ref, theirs, TEXTURE_LAYERS)

    def score(self, image: torch.Tensor) -> dict[str, float]:
        """``{name: value}`` for :data:`NAMES`, of ``(1, 3, H, W)`` ``image`` in 0–1."""
        edge = max(image.shape[-2:])
        photo = resize(self.content, tuple(image.shape[-2:]))
        painting = resize_long_edge(self.style, edge)
        ours, ref, theirs = map(self._features, (image, photo, painting))
        colours = pixel_points(painting, generator=_generator())
        mine, base = (
            _distance(pixel_points(x, generator=_generator()), colours) for x in (image, photo)
        )
        gram = [
            F.mse_loss(gram_matrix(ours[k]), gram_matrix(theirs[k])).item() for k in GRAM_LAYERS
        ]
        small = resize_long_edge(image, ANALYSIS_EDGE)
        return {
            "content": F.mse_loss(ours[CONTENT_LAYER], ref[CONTENT_LAYER]).item(),
            "gram": sum(gram) / len(gram),
            "swd_features": self._swd_features(image, painting),
            "swd_colour": mine / base,
            "speckle": speckle_density(image),
            "swd_features_512": self._swd_features(
                small, resize_long_edge(self.style, ANALYSIS_EDGE)
            ),
            "swd_features_band": self._swd_features(
                image, style_image(WeightedStyle(self.style), edge)
            ),
            "texture_1to1": self.texture_1to1(image),
        }


def main() -> None:
    """Score image files against a photo–painting pair and print every yardstick."""
    parser = argparse.ArgumentParser(description="Score stylized images (module docstring).")
    parser.add_argument("images", type=Path, nargs="+", help="image files to score")
    parser.add_argument("--photo", type=Path, default=PHOTO, help="the content photo")
    parser.add_argument("--painting", type=Path, default=PAINTING, help="the style painting")
    parser.add_argument("--json", type=Path, help="write {image: {name: value}} here")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    sticks = Yardsticks(
        load_image(args.photo, "content"), load_image(args.painting, "style"), torch.device("cpu")
    )
    scores = {}
    for path in args.images:
        image = load_image(path, "image")
        scores[str(path)] = sticks.score(image)
        values = "  ".join(f"{k} {v:.4g}" for k, v in scores[str(path)].items())
        print(f"{path} ({image.shape[-1]}×{image.shape[-2]}): {values}")
    if args.json is not None:
        args.json.write_text(json.dumps(scores, indent=1) + "\n")


if __name__ == "__main__":
    main()
