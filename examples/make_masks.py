"""Make the example masks for spatial control: ``tubingen-sky.png`` (white: the sky) and
``tubingen-town.png`` (its complement), from ``tubingen.jpg``.

The sky is the blue, smooth region connected to the top edge (flood fill from the top row of a
blue-dominance map, so the river's reflection of the sky stays town), closed and opened to
remove the branches' speckle, then feathered by a 3 px Gaussian so the masks have soft edges.
Run: ``python examples/make_masks.py`` (writes next to this file).
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent


def sky_mask(photo: Image.Image) -> Image.Image:
    """White where ``photo`` (RGB) shows sky connected to its top edge, soft-edged, mode L."""
    rgb = np.asarray(photo.convert("RGB"), dtype=np.int32)
    blue = (rgb[..., 2] - rgb[..., 0] > 50) & (rgb[..., 2] > 120)
    binary = Image.fromarray(np.where(blue, 128, 0).astype(np.uint8))
    binary = binary.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.MinFilter(5))  # close
    for x in range(0, binary.width, 8):
        if binary.getpixel((x, 0)) == 128:
            ImageDraw.floodfill(binary, (x, 0), 255)
    connected = binary.point(lambda v: 255 if v == 255 else 0)
    connected = connected.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))
    return connected.filter(ImageFilter.GaussianBlur(3))


def main() -> None:
    with Image.open(HERE / "tubingen.jpg") as photo:
        sky = sky_mask(photo)
    sky.save(HERE / "tubingen-sky.png", optimize=True)
    Image.eval(sky, lambda v: 255 - v).save(HERE / "tubingen-town.png", optimize=True)


if __name__ == "__main__":
    main()
