"""Optimizers over the pixels of an image: L-BFGS (Gatys et al. 2016) or Adam.

A stage's cap is counted in *objective evaluations* (one VGG forward + backward each), the unit
of cost, whatever the optimizer; ``stages.cascade`` may stop it earlier on convergence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor

from .vocabulary import LBFGS_HISTORY, OPTIMIZERS


class _Capped(Exception):
    """The evaluation that reached the cap was made inside L-BFGS's step (its line search
    would go on past it): the step ends there."""


def optimize(
    image: Tensor,
    name: str,
    lr: float,
    evaluations: int,
    evaluate: Callable[[], Tensor],
    on_evaluation: Callable[[int], None] | None = None,
    history: int = LBFGS_HISTORY,
) -> int:
    """Minimize an objective over the pixels of ``image`` in place.

    - ``lbfgs``: ``torch.optim.LBFGS`` with a strong-Wolfe line search (Nocedal & Wright 2006,
      Alg. 3.5) and initial step ``lr`` (1.0 is the natural L-BFGS step). The line search makes it
      independent of the loss's scale; without it, the first step of PyTorch's L-BFGS is
      normalized to unit L1 length, far too small to estimate curvature from, and the second
      step explodes. Its own tolerances are zero: it never stops on a small gradient;
      the cascade's relative tolerance (``stages.cascade.converged``) stops it instead. Pixels
      are unconstrained; the caller clamps the result to 0–1.
    - ``adam``: ``torch.optim.Adam`` with step ``lr`` in 0–1 pixel units (e.g. 0.02); pixels are
      projected back onto 0–1 after every step.

    Args:
        image: ``(1, 3, H, W)`` leaf tensor in 0–1 with ``requires_grad=True``.
        name: ``"lbfgs"`` or ``"adam"``.
        lr: step size (see above), > 0.
        evaluations: the cap of objective evaluations, ≥ 1, exact: L-BFGS stops at the
            evaluation that reaches it, also inside a line search (``image`` is then the
            point of that last evaluation; the cascade keeps the best iterate anyway).
        evaluate: computes the objective at the current ``image``, accumulates its gradient into
            ``image.grad`` (which is zeroed before each call) and returns its value as a 0-d
            tensor. Owning the backward pass lets a tiled evaluation run one backward per tile.
        on_evaluation: called with the running count after each evaluation (for progress and
            checks); an exception raised there stops the optimization and propagates.
        history: L-BFGS's history size (update pairs kept, each two image-sized vectors).

    Returns:
        The number of evaluations made, at most ``evaluations``.

    Raises:
        ValueError: unknown optimizer name.
    """
    count = 0

    def closure() -> Tensor:
        nonlocal count
        if image.grad is None:
            image.grad = torch.zeros_like(image)
        else:
            image.grad.zero_()
        loss = evaluate().detach()
        count += 1
        if on_evaluation is not None:
            on_evaluation(count)
        if count >= evaluations and name == "lbfgs":
            raise _Capped
        return loss

    if name == "lbfgs":
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
            [image],
            lr=lr,
            max_iter=evaluations,
            max_eval=evaluations,
            history_size=history,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )
        with contextlib.suppress(_Capped):
            optimizer.step(closure)
    elif name == "adam":
        optimizer = torch.optim.Adam([image], lr=lr)
        for _ in range(evaluations):
            optimizer.step(closure)
            with torch.no_grad():
                image.clamp_(0.0, 1.0)
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return count
