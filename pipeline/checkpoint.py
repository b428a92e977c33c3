"""Stage checkpoints beside the output, so an interrupted render can ``--resume``.

``OUT.png.checkpoint/`` holds, after every finished stage, ``stageN.pt`` (the stage's float
result, exactly as the next stage starts from it) and ``state.json`` (the render's fingerprint
and the finished stages' manifest entries). An interrupted render adds ``partial.png`` (the best
image so far) and ``manifest.json``. The folder is removed once the output is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import ArgumentError, UsageError, literal
from .files import own_folder, remove_own_folder, tensor_digest, write_json, write_torch
from .naming import checkpoint_folder
from .reading import Bound, open_regular, read_json

__all__ = ["STAGE", "Checkpoint", "fingerprint"]

STAGE = Bound(1 << 36, "stage image")
"""A stage image ``stageN.pt``: float32 RGB, at most 64 GiB (a 100 000 × 60 000 px stage; the
input pixel guard stops far below)."""


def fingerprint(facts: dict[str, Any]) -> str:
    """SHA-256 of everything that determines a render's result (preset, seed, weights, input
    file digests), as canonical JSON."""
    text = json.dumps(facts, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Checkpoint:
    """The checkpoint folder of one output.

    Args:
        output: the render's output image path.
        print_: the render's fingerprint (:func:`fingerprint`); a checkpoint made by a different
            render is refused rather than mixed in.
    """

    def __init__(self, output: Path, print_: str) -> None:
        self.folder = checkpoint_folder(output)
        self.fingerprint = print_

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    def exists(self) -> bool:
        """Whether a checkpoint folder is there (from this or another render; a link in its
        place counts, and the write rule refuses it: ``write_checks.check_outputs``)."""
        return os.path.lexists(self.folder)

    def finished(self) -> int:
        """How many stages the checkpoint holds (0 when none finished or it cannot be read;
        :meth:`load` reports what is wrong with it)."""
        try:
            return len(read_json(self.state_path, self.state_path.name)["stages"])
        except (UsageError, KeyError, TypeError):
            return 0

    def load(self) -> tuple[list[dict[str, Any]], Tensor | None]:
        """The finished stages' manifest entries and the last one's image, verified: the
        state must be this render's, and the image must have the last stage's size, finite
        values in 0–1 and the digest recorded when it was saved.

        Returns:
            ``(entries, image)``; ``image`` is ``(1, 3, H, W)`` in 0–1 on the CPU, ``None`` when
            no stage had finished.

        Raises:
            UsageError: no checkpoint, a damaged one (unreadable, edited, truncated, a flipped
                bit), or one made by a different render; the message says to ``--overwrite``.
        """
        state = self._state()
        entries = state["stages"]
        if not entries:
            return [], None
        path = self.folder / f"stage{len(entries)}.pt"
        try:
            with open_regular(path, STAGE, path.name) as handle:
                image = torch.load(handle, map_location="cpu", weights_only=True)
        except UsageError as exc:
            raise self._damaged(str(exc)) from None
        except Exception as exc:  # torch reports damage as many kinds; any of them is damage
            raise self._damaged(f"cannot read {path.name} ({type(exc).__name__})") from None
        size = entries[-1].get("size")  # [W, H]
        shape = None if not isinstance(size, list) else (1, 3, *reversed(size))
        if not isinstance(image, Tensor) or tuple(image.shape) != shape:
            raise self._damaged(f"{path.name} is not the image of its stage ({size} px)")
        if not bool(torch.isfinite(image).all()) or image.min() < 0 or image.max() > 1:
            raise self._damaged(f"{path.name} holds values outside 0–1")
        if state.get("digests", {}).get(path.name) != tensor_digest(image):
            raise self._damaged(f"{path.name} does not match the digest saved with it")
        return entries, image

    def _state(self) -> dict[str, Any]:
        """``state.json``, checked to be this render's (an empty state when a render was
        interrupted during its first stage)."""
        if not self.state_path.exists():
            if self.exists():
                return {"stages": []}  # interrupted during the first stage
            raise ArgumentError(
                "resume", f"{{}}: no checkpoint {literal(self.folder)} to resume from"
            )
        try:
            state = read_json(self.state_path, self.state_path.name)
        except UsageError as exc:
            raise self._damaged(str(exc)) from None
        if not isinstance(state, dict) or not isinstance(state.get("stages"), list):
            raise self._damaged("state.json is not a checkpoint state")
        if state.get("fingerprint") != self.fingerprint:
            raise ArgumentError(
                "resume",
                f"{{}}: checkpoint {literal(self.folder)} was made with other inputs, preset, seed "
                f"or weights; run with the same ones, or pass {{}} to start over",
                "overwrite",
            )
        if not all(isinstance(e, dict) for e in state["stages"]):
            raise self._damaged("state.json is not a checkpoint state")
        return state

    def _damaged(self, problem: str) -> UsageError:
        return ArgumentError(
            "resume",
            f"{{}}: checkpoint {literal(self.folder)} is damaged: {problem}; pass {{}} to start "
            f"over",
            "overwrite",
        )

    def save_stage(self, entries: list[dict[str, Any]], image: Tensor) -> None:
        """Record a finished stage: its image as ``stage{len(entries)}.pt``, then the state
        with the image's digest (:func:`tensor_digest`).

        Args:
            entries: manifest entries of every finished stage, this one last.
            image: ``(1, 3, H, W)`` the stage's result in 0–1, any device.

        Raises:
            ArgumentError: a link or a file in the folder's place (never followed).
            OSError: the folder cannot be written.
        """
        own_folder(self.folder)
        name = f"stage{len(entries)}.pt"
        cpu = image.detach().cpu().contiguous()
        write_torch(self.folder / name, cpu)
        state = {"fingerprint": self.fingerprint, "stages": entries}
        write_json(self.state_path, {**state, "digests": {name: tensor_digest(cpu)}})

    def remove(self) -> None:
        """Delete the folder (after the output is written, or to start over); a link in its
        place is never followed."""
        remove_own_folder(self.folder)
