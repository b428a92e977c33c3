"""The Wasserstein-2 style kind: a painting's style as the mean and covariance of each layer's
feature vectors, compared by the W2 distance between their Gaussian fits (Li, Wang, Liu & Hou
2017, "Demystifying Neural Style Transfer", Sec. 4; Kolkin, Salavon & Shakhnarovich 2019,
STROTSS, Sec. 2.2; crowsonkb/style-transfer-pytorch's ``StyleLossW2`` does the same on a GPU).

The Gram matrix is a second moment without a mean: it can be matched by feature distributions
whose means are wrong, and it weighs channels by their energy. W2 matches the mean and the
covariance, ``‖μ − μt‖² + tr(Σ + Σt − 2 (Σt^½ Σ Σt^½)^½)`` (``stages.distributions``).

Representation (``stages.losses.StyleKind``): the raw moments of the (guided) features packed
into one ``(1, C, C + 1)`` float32 tensor — column 0 the mean ``E[g²·f] / E[g²]``, columns 1…C
the second moment ``E[g²·f·fᵀ] / E[g²]`` (the guide ``g`` weighs positions by ``g²`` as the
guided Gram matrix does, Gatys et al. 2017, Sec. 4.1). Both are means over positions, so a
tiled stage pools its tiles exactly (``stages.tiling``), and a blend of paintings is the
weighted sum of their moments: the moments of the mixture of their feature distributions.
The covariance ``E[ffᵀ] − μμᵀ`` is formed in float64 when scored.

Score: W2² relative to the target's mean square ``‖μt‖² + tr Σt`` (``distributions.relative``),
the convention of every loss here; the target's Gaussian fit and matrix square root are
computed once per target (an eigendecomposition in float64, ``distributions.sqrtm_psd``) and
kept while the target lives (``distributions.PerTarget``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .distributions import PerTarget, relative, second_moment, sqrtm_psd, w2_gaussian
from .gram import guided_gram, linear_blend


def pack(mean: Tensor, second: Tensor) -> Tensor:
    """``(1, C)`` mean and ``(1, C, C)`` second moment → ``(1, C, C + 1)`` (mean first)."""
    return torch.cat([mean[..., None], second], dim=-1)


def unpack(moments: Tensor) -> tuple[Tensor, Tensor]:
    """``(1, C, C + 1)`` → float64 mean ``(1, C)`` and covariance ``(1, C, C)``
    (``E[ffᵀ] − μμᵀ``, symmetrized)."""
    m = moments.double()
    mean, second = m[..., 0], m[..., 1:]
    cov = second - mean[..., :, None] * mean[..., None, :]
    return mean, (cov + cov.mT) / 2


def _fit(target: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A target's float64 mean, covariance, ``Σt^½`` and mean square ``‖μt‖² + tr Σt``."""
    mean, cov = unpack(target)
    return mean, cov, sqrtm_psd(cov), second_moment(mean, cov)


_FITS = PerTarget(_fit)


@dataclass(frozen=True)
class GaussianW2:
    """The W2 style loss between Gaussian fits of the features (module docstring). A frozen
    value, so equal kinds share cached targets (``stages.blend.StyleTargets``)."""

    pooled = True
    """Its representation is a mean over positions: tiles pool exactly."""

    def represent(self, features: Tensor, guide: Tensor | None, energy: float | Tensor) -> Tensor:
        """Raw moments of ``(1, C, h, w)`` features under ``guide`` (``(1, 1, h, w)`` in 0–1,
        ``None``: everywhere) whose ``mean(g²)`` over the whole image is ``energy``:
        ``(1, C, C + 1)`` float32, ``[E[g²f], E[g²ffᵀ]] / energy``."""
        c = features.shape[1]
        second = guided_gram(features, guide, energy) * c  # gram_matrix divides by C·h·w
        weighted = features.float() if guide is None else features.float() * guide.pow(2)
        return pack(weighted.mean(dim=(2, 3)) / energy, second)

    def blend(self, weighted: Sequence[tuple[float, Tensor]]) -> Tensor:
        """``Σ_i w_i · M_i``: the moments of the mixture of the paintings' features.

        Raises:
            ValueError: no pair.
        """
        return linear_blend(weighted)

    def score(self, representation: Tensor, target: Tensor, target_energy: Tensor) -> Tensor:
        """Relative W2² of ``(1, C, C + 1)`` moments against the target's: 0-d float32 ≥ 0
        (``target_energy``, the Gram convention's ``mean(T²)``, is not used: W2 is relative
        to the target's own ``‖μt‖² + tr Σt``)."""
        mean, cov = unpack(representation)
        target_mean, target_cov, root, target_square = _FITS(target)
        distance = w2_gaussian(mean, cov, target_mean, target_cov, root)
        return relative(distance, target_square).float().sum()


W2 = GaussianW2()
"""The W2 kind (``style_loss: w2``; registered in ``vocabulary.STYLE_KINDS``)."""
