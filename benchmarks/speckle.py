"""Speckle density at print size: the ``print`` preset on the bundled pair at ``--final`` px
(default 1024), the density of every stage's image and of the final one against a bound.

Speckle density (``stylecascade.stages.quality.speckle_density``): the fraction of pixels whose
luminance differs from the median of their 3×3 neighbourhood by more than 0.25 — isolated bright
or dark pixels. Measured before issue 13 with the same definition: 2.6e-2 for ``print --size
1024``; jcjohnson/neural-style's reference render of the pair 2e-5. Writes the final image to
``docs/print-FINAL.jpg`` (quality 92) for the README.

    python benchmarks/speckle.py [--final PX] [--device cpu|cuda] [--out PATH]
"""

from __future__ import annotations

import time
from pathlib import Path

from common import arguments, device_from, report
from stylecascade import render
from stylecascade.images import as_tensor
from stylecascade.stages.quality import speckle_density

ROOT = Path(__file__).resolve().parent.parent
CONTENT, STYLE = ROOT / "examples" / "tubingen.jpg", ROOT / "examples" / "starry_night.jpg"
BOUND = 1e-3
"""Speckle density the final image may have (the photo itself scores 1.6e-2 at 1024 px)."""


def main() -> None:
    args = arguments(__doc__.splitlines()[0], final=True)
    device = device_from(args)
    final = args.final or 1024
    began = time.perf_counter()
    result = render(CONTENT, STYLE, preset="print", size=final, device=device, seed=0)
    seconds = time.perf_counter() - began
    picture = ROOT / "docs" / f"print-{final}.jpg"
    result.image.save(picture, quality=92)
    stages = result.manifest["stages"]
    rows, entries = [], []
    for stage, image in zip(stages, result.stages, strict=True):
        value = speckle_density(as_tensor(image, "stage"))
        entries.append({**{k: stage[k] for k in ("size", "iterations", "stop", "seconds")},
                        "speckle": value})  # fmt: skip
        rows.append([f"{stage['size'][0]}×{stage['size'][1]}", str(stage["iterations"]),
                     stage["stop"], f"{stage['seconds']:.1f}", f"{value:.2e}"])  # fmt: skip
    final_density = entries[-1]["speckle"]
    report(
        "speckle",
        ["stage", "evaluations", "stop", "seconds", "speckle density"],
        rows,
        {"final_size": final, "seconds": seconds, "stages": entries, "speckle": final_density,
         "bound": BOUND, "met": final_density <= BOUND,
         "picture": str(picture.relative_to(ROOT))},
        args.out,
        device,
    )  # fmt: skip
    verdict = "met" if final_density <= BOUND else "MISSED"
    print(f"final speckle density {final_density:.2e} (bound {BOUND:.0e}): {verdict}")


if __name__ == "__main__":
    main()
