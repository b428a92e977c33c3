"""The evaluator of a stage: the objective's value and gradient at the image being optimized,
and the record of every evaluation (loss trace, best iterate, first and last terms).

:class:`UntiledEvaluator` runs the network on the whole image; ``stages.tiling.TiledEvaluator``
runs it tile by tile. Both evaluate the same :class:`~.losses.Objective`, here or, through a
runner (:class:`WholeRunner`, ``stages.tiling.TileRunner``), elsewhere: a cluster's actors.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

import torch
from torch import Tensor

from .losses import Objective, detached, total


class Best:
    """The evaluated iterate with the lowest loss, tracked on the device without syncing.

    Args:
        image: ``(1, 3, H, W)`` the starting image (kept until a finite loss is offered).
    """

    def __init__(self, image: Tensor) -> None:
        self.image = image.detach().clone()
        self.loss = torch.full((), math.inf, device=image.device)

    def offer(self, loss: Tensor, image: Tensor) -> None:
        """Keep ``image`` if ``loss`` (0-d) is lower than the best so far (never for NaN)."""
        better = loss < self.loss
        self.loss = torch.where(better, loss, self.loss)
        self.image = torch.where(better, image.detach(), self.image)


class Evaluator:
    """Evaluates a stage's objective at ``image`` and records every evaluation.

    Calling the evaluator is the closure an optimizer needs (``stages.optim.optimize``): it
    accumulates the gradient into ``image.grad`` and returns the value the optimizer sees.

    Args:
        objective: the stage's weighted terms.
        image: ``(1, 3, H, W)`` leaf tensor in 0–1 with ``requires_grad=True``, being optimized.
        autocast: context each evaluation runs in (bf16 autocast on CUDA; else a no-op).

    Attributes:
        trace: the weighted total of every recorded evaluation (0-d tensors, on the device).
        best: the recorded iterate with the lowest total (:class:`Best`).
        first, last: the weighted terms of the first and the last recorded evaluation.
    """

    def __init__(
        self,
        objective: Objective,
        image: Tensor,
        autocast: AbstractContextManager | None = None,
    ) -> None:
        self.objective, self.image = objective, image
        self.autocast = autocast if autocast is not None else nullcontext()
        self.trace: list[Tensor] = []
        self.best = Best(image)
        self.first: dict[str, Tensor] | None = None
        self.last: dict[str, Tensor] | None = None

    @property
    def count(self) -> int:
        """Recorded evaluations so far."""
        return len(self.trace)

    def evaluate(self) -> tuple[Tensor, dict[str, Tensor]]:
        """One evaluation, not recorded: accumulates the gradient into ``image.grad``.

        Returns:
            ``(value, terms)``: the 0-d value the optimizer sees (the total × H·W, see
            :class:`UntiledEvaluator`) and the weighted terms by name, detached.
        """
        raise NotImplementedError

    def __call__(self) -> Tensor:
        """One recorded evaluation; returns the value the optimizer sees."""
        value, terms = self.evaluate()
        if self.first is None:
            self.first = terms
        self.last = terms
        self.trace.append(total(terms))
        self.best.offer(self.trace[-1], self.image)
        return value


class WholeRunner(Protocol):
    """Runs a stage's whole (untiled) evaluations elsewhere, e.g. on a cluster's actor, as
    :class:`UntiledEvaluator` computes them here; the image and the optimizer stay here."""

    def evaluation(self) -> AbstractContextManager:
        """A context around one evaluation (e.g. to time it)."""
        ...

    def whole(self, image: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One evaluation at ``image`` ``(1, 3, H, W)`` in 0–1: ``(value, weighted terms,
        gradient (1, 3, H, W))`` on any device, the value as :class:`UntiledEvaluator`'s."""
        ...


class UntiledEvaluator(Evaluator):
    """The network on the whole image; one forward and one backward per evaluation.

    The losses are means over pixels, so their per-pixel gradients shrink as 1/(H·W). The
    optimizer sees the sum over pixels instead: the same minimizer, but gradients of a
    size-independent magnitude, far from Adam's epsilon and L-BFGS's curvature threshold.

    Args:
        objective, image, autocast: as for :class:`Evaluator`.
        runner: computes each evaluation elsewhere (:class:`WholeRunner`); ``None``: here.
    """

    def __init__(
        self,
        objective: Objective,
        image: Tensor,
        autocast: AbstractContextManager | None = None,
        runner: WholeRunner | None = None,
    ) -> None:
        super().__init__(objective, image, autocast)
        self.runner = runner

    def evaluate(self) -> tuple[Tensor, dict[str, Tensor]]:
        if self.runner is not None:
            return self._elsewhere(self.runner)
        with self.autocast:
            terms = self.objective(self.image)
        scaled = total(terms) * (self.image.shape[-2] * self.image.shape[-1])
        scaled.backward()
        return scaled.detach(), detached(terms)

    def _elsewhere(self, runner: WholeRunner) -> tuple[Tensor, dict[str, Tensor]]:
        """One evaluation by ``runner``, its gradient accumulated into ``image.grad``."""
        image = self.image
        with runner.evaluation():
            value, terms, grad = runner.whole(image)
            grad = grad.to(image.device)
            if image.grad is None:
                image.grad = grad
            else:
                image.grad += grad
        return value.to(image.device), {k: v.to(image.device) for k, v in terms.items()}
