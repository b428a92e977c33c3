"""Spatial control on the bundled example: the sky from *The Starry Night*, the town from *The
Scream* (``examples/tubingen-sky.png`` / ``-town.png``), with masks brought to each layer by
``resize`` and by ``inside``, against the same two paintings blended without masks.

Measured per render: wall time (the goal: masked ≤ 1.2 × unmasked); the *boundary* ratio, the
luminance gradient energy along the mask boundary over the rest of the image, divided by the
same ratio of the photo (1: the render's skyline is no sharper or more haloed, relative to the
rest, than the photo's); the *leak* on each side, the relu1_1 + relu2_1 Gram error of a band
3–12 px from the boundary against its own painting over the error against the other painting
(lower: cleaner regions up to the boundary). Writes the renders to ``docs/masks-*.jpg``.

    python benchmarks/guides.py [--final PX] [--device cpu|cuda] [--out PATH]
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import arguments, device_from, report
from stylecascade import render
from stylecascade.images import as_tensor, load_mask
from stylecascade.preset_files import load_preset
from stylecascade.renderer import Renderer
from stylecascade.stages.blend import WeightedStyle, blended_targets
from stylecascade.stages.color import luminance
from stylecascade.stages.gram import guided_gram
from stylecascade.stages.losses import relative_error
from stylecascade.stages.resample import resize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CONTENT = EXAMPLES / "tubingen.jpg"
STYLES = [EXAMPLES / "starry_night.jpg", EXAMPLES / "the_scream.jpg"]
MASKS = [EXAMPLES / "tubingen-sky.png", EXAMPLES / "tubingen-town.png"]
LAYERS = ["relu1_1", "relu2_1"]


def _gradient_energy(image: torch.Tensor) -> torch.Tensor:
    """``(1, 1, H-1, W-1)`` squared luminance gradient of ``(1, 3, H, W)``."""
    y = luminance(image)
    return (y[..., 1:, :-1] - y[..., :-1, :-1]).pow(2) + (y[..., :-1, 1:] - y[..., :-1, :-1]).pow(2)


def _band(mask: torch.Tensor, near: int, far: int) -> torch.Tensor:
    """Pixels ``near``–``far`` px inside ``mask`` ((1, 1, H, W), hard at 0.5) from its edge."""
    hard = (mask > 0.5).float()
    erode = lambda m, r: -F.max_pool2d(-m, 2 * r + 1, stride=1, padding=r)  # noqa: E731
    return erode(hard, near) - erode(hard, far)


def boundary_ratio(image: torch.Tensor, photo: torch.Tensor, mask: torch.Tensor) -> float:
    """Gradient energy on the mask boundary (2 px either side) over elsewhere, for ``image``
    relative to ``photo``."""
    hard = (mask > 0.5).float()
    grow = F.max_pool2d(hard, 5, stride=1, padding=2) - (-F.max_pool2d(-hard, 5, 1, 2))
    on = grow[..., :-1, :-1] > 0

    def ratio(picture: torch.Tensor) -> float:
        energy = _gradient_energy(picture)
        return (energy[on].mean() / energy[~on].mean()).item()

    return ratio(image) / ratio(photo)


def leak(image, mask, own, other, extractor) -> float:
    """Gram error of the band 3–12 px inside ``mask`` to ``own`` over that to ``other``."""
    band = _band(mask, 3, 12)
    with torch.no_grad():
        features = extractor(image)
    ratios = []
    for layer in LAYERS:
        f = features[layer]
        guide = F.adaptive_avg_pool2d(band, f.shape[-2:])
        gram = guided_gram(f, guide, guide.pow(2).mean())
        ratios.append(relative_error(gram, own[layer]) / relative_error(gram, other[layer]))
    return float(sum(ratios) / len(ratios))


def main() -> None:
    args = arguments(__doc__.splitlines()[0], final=True)
    device = device_from(args)
    final = args.final or 512
    draft = load_preset("draft")
    rows, entries, images = [], [], {}
    for name, masks, mode in (
        ("unmasked", None, "resize"),
        ("masked resize", MASKS, "resize"),
        ("masked inside", MASKS, "inside"),
    ):
        preset = dataclasses.replace(draft, model=dataclasses.replace(draft.model, guides=mode))
        began = time.perf_counter()
        result = render(
            CONTENT, STYLES, preset=preset, masks=masks, size=final, device=device, seed=0
        )
        seconds = time.perf_counter() - began
        images[name] = result.tensor
        slug = name.replace(" ", "-")
        result.image.save(ROOT / "docs" / f"masks-{slug}-{final}.jpg", quality=92)
        entries.append({"name": name, "seconds": seconds})
    extractor = Renderer(draft, device=device).network.extractor
    hw = tuple(images["unmasked"].shape[-2:])
    photo = resize(as_tensor(CONTENT, "content"), hw)
    sky = resize(load_mask(MASKS[0], "mask"), hw)
    paintings = [
        blended_targets(extractor, [WeightedStyle(as_tensor(p, "style").to(device))], final, LAYERS)
        for p in STYLES
    ]
    base = entries[0]["seconds"]
    for entry in entries:
        image = images[entry["name"]].to(device)
        entry["time_ratio"] = entry["seconds"] / base
        entry["boundary"] = boundary_ratio(image.cpu(), photo, sky)
        entry["leak_sky"] = leak(image, sky.to(device), *paintings, extractor)
        entry["leak_town"] = leak(image, 1 - sky.to(device), *paintings[::-1], extractor)
        rows.append(
            [
                entry["name"],
                f"{entry['seconds']:.0f}",
                f"{entry['time_ratio']:.2f}",
                f"{entry['boundary']:.2f}",
                f"{entry['leak_sky']:.3f}",
                f"{entry['leak_town']:.3f}",
            ]
        )
    columns = ["render", "seconds", "× unmasked", "boundary", "leak sky", "leak town"]
    report("guides", columns, rows, {"final": final, "renders": entries}, args.out, device)


if __name__ == "__main__":
    main()
