"""Timings and accuracy of the distribution losses (``stages/distributions.py``, ``sliced.py``)
on this CPU.

1. The matrix square root at the channel counts of VGG19's style layers (C = 64 … 512):
   :func:`sqrtm_psd` (float64 ``eigh``, Sylvester backward) against Newton–Schulz iterations
   in float32 with autograd's backward through them (the method of crowsonkb's
   ``StyleLossW2``). Matrices are covariance-like: eigenvalues decaying as ``1/k²`` (condition
   number ``C²``) and a tenth of them 0 (dead ReLU channels). Accuracy against the float64
   eigendecomposition root (itself checked by the residual ``‖S·S − A‖ / ‖A‖``): the relative
   Frobenius error of ``S`` and the relative error of ``tr S`` (what W2 reads, where the small
   eigenvalues weigh most); time: forward + backward of ``sum(S ⊙ W)``, median of 5.
2. Forward + backward of each loss against the Gram loss (``gram_matrix`` + ``relative_error``)
   at relu3_1-like (C = 256, 128×128 positions) and relu1_1-like (C = 64, 512×512) sizes,
   median (and min) of 5, with ``--threads`` threads (default 2). W2 with the target's square root
   precomputed; sliced with ``n = C`` directions and as many target quantiles as positions.

    python benchmarks/distributions.py [--threads N] [--iterations N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from stylecascade.stages.distributions import (
    moments,
    relative,
    second_moment,
    sqrtm_psd,
    w2_gaussian,
)
from stylecascade.stages.gram import gram_matrix
from stylecascade.stages.losses import relative_error
from stylecascade.stages.sliced import random_directions, sliced_wasserstein, target_quantiles
from torch import Tensor


def timed(step: Callable[[], None], repeats: int = 5) -> str:
    """``"median (min)"`` wall time in s of ``step()`` over ``repeats`` runs after a warm-up
    (the minimum shows what the median loses to other processes on a shared machine)."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return f"{statistics.median(times):.4f} ({min(times):.4f})"


def covariance_like(c: int, seed: int) -> Tensor:
    """``(1, C, C)`` float32 PSD: eigenvalues ``1/k²``, every tenth 0, a random basis."""
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(c, c, generator=g, dtype=torch.float64))[0]
    spectrum = 1.0 / torch.arange(1, c + 1, dtype=torch.float64) ** 2
    spectrum[::10] = 0
    return (q @ torch.diag(spectrum) @ q.T).float()[None]


def newton_schulz(a: Tensor, iterations: int) -> Tensor:
    """Coupled Newton–Schulz iteration for ``A^½`` (Higham 2008, Eq. 6.35), float32, on
    ``A / ‖A‖_F`` (so that it converges), rescaled by ``‖A‖_F^½``."""
    norm = a.norm(dim=(-2, -1), keepdim=True)
    y, z = a / norm, torch.eye(a.shape[-1]).expand_as(a)
    for _ in range(iterations):
        t = (3 * torch.eye(a.shape[-1]) - z @ y) / 2
        y, z = y @ t, t @ z
    return y * norm.sqrt()


def compare_sqrtm(iterations: int) -> None:
    """Part 1: accuracy and time of both square roots."""
    print(f"square root: eigh float64 (ours) vs Newton–Schulz float32, {iterations} iterations")
    header = f"{'C':>4} {'method':>6} {'rel err':>9} {'tr err':>9} {'residual':>9}"
    print(f"{header}  fwd+bwd s, median (min)")
    for c in (64, 128, 256, 512):
        a = covariance_like(c, c)
        reference = sqrtm_psd(a.double())
        weight = torch.randn(1, c, c)
        methods = {"eigh": sqrtm_psd, "NS": lambda m: newton_schulz(m, iterations)}
        for name, root in methods.items():
            s = root(a).double()
            error = ((s - reference).norm() / reference.norm()).item()
            trace = s.diagonal(dim1=-2, dim2=-1).sum() / reference.diagonal(dim1=-2, dim2=-1).sum()
            residual = ((s @ s - a.double()).norm() / a.norm()).item()

            def step(
                root: Callable[[Tensor], Tensor] = root, a: Tensor = a, weight: Tensor = weight
            ) -> None:
                x = a.clone().requires_grad_()
                (root(x) * weight).sum().backward()

            row = f"{c:>4} {name:>6} {error:>9.1e} {abs(trace.item() - 1):>9.1e} {residual:>9.1e}"
            print(f"{row}  {timed(step)}")


def loss_steps(c: int, side: int) -> dict[str, Callable[[], None]]:
    """Forward + backward of each loss on ``(1, C, side, side)`` features."""
    torch.manual_seed(0)
    image = torch.randn(1, c, side, side).relu()
    painting = torch.randn(1, c, side, side).relu() * 1.5
    gram_target = gram_matrix(painting)
    t = moments(painting)
    t_mean, t_cov = t.mean, t.covariance
    t_root, t_energy = sqrtm_psd(t_cov), second_moment(t_mean, t_cov)
    directions = random_directions(c, c, torch.Generator().manual_seed(0))
    quantiles = target_quantiles(painting, directions, side * side)

    def run(loss: Callable[[Tensor], Tensor]) -> Callable[[], None]:
        def step() -> None:
            x = image.clone().requires_grad_()
            loss(x).sum().backward()

        return step

    def w2(x: Tensor) -> Tensor:
        m = moments(x)
        return relative(w2_gaussian(m.mean, m.covariance, t_mean, t_cov, t_root), t_energy)

    return {
        "gram": run(lambda x: relative_error(gram_matrix(x), gram_target)),
        "w2": run(w2),
        "sliced": run(lambda x: sliced_wasserstein(x, directions, quantiles)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20, help="Newton–Schulz iterations")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    compare_sqrtm(args.iterations)
    for label, c, side in (("relu3_1-like", 256, 128), ("relu1_1-like", 64, 512)):
        times = {name: timed(step) for name, step in loss_steps(c, side).items()}
        text = ", ".join(f"{name} {s} s" for name, s in times.items())
        print(f"{label} C={c} {side}×{side}: fwd+bwd median (min) of 5: {text}")


if __name__ == "__main__":
    main()
