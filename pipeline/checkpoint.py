"""Stage checkpoints beside the output, so an interrupted render can ``--resume``.

``OUT.png.checkpoint/`` holds, after every finished stage, ``stageN.pt`` (the stage's float
result, exactly as the next stage starts from it) and ``state.json`` (the render's fingerprint
and the finished stages' manifest entries). An interrupted render adds ``partial.png`` (the best
image so far) and ``manifest.json``. The folder is removed once the output is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import UsageError
from .files import atomic_write, write_json


def checkpoint_folder(output: Path) -> Path:
    """``OUT.png.checkpoint`` beside ``OUT.png``."""
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


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
        """Whether a checkpoint folder is there (from this or another render)."""
        return self.folder.exists()

    def finished(self) -> int:
        """How many stages the checkpoint holds (0 when none finished or it cannot be read;
        :meth:`load` reports what is wrong with it)."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            return len(state["stages"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def load(self) -> tuple[list[dict[str, Any]], Tensor | None]:
        """The finished stages' manifest entries and the last one's image.

        Returns:
            ``(entries, image)``; ``image`` is ``(1, 3, H, W)`` in 0–1 on the CPU, ``None`` when
            no stage had finished.

        Raises:
            UsageError: no checkpoint, an unreadable one, or one made by a different render.
        """
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if self.folder.exists():
                return [], None  # interrupted during the first stage
            raise UsageError(f"--resume: no checkpoint {self.folder} to resume from") from None
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"--resume: checkpoint {self.state_path} is unreadable ({exc})"
            ) from None
        if state.get("fingerprint") != self.fingerprint:
            raise UsageError(
                f"--resume: checkpoint {self.folder} was made with other inputs, preset, seed or "
                f"weights; run with the same ones, or pass --overwrite to start over"
            )
        entries = state["stages"]
        if not entries:
            return [], None
        path = self.folder / f"stage{len(entries)}.pt"
        try:
            image = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise UsageError(f"--resume: cannot read {path} ({exc})") from None
        return entries, image

    def save_stage(self, entries: list[dict[str, Any]], image: Tensor) -> None:
        """Record a finished stage: its image as ``stage{len(entries)}.pt``, then the state.

        Args:
            entries: manifest entries of every finished stage, this one last.
            image: ``(1, 3, H, W)`` the stage's result in 0–1, any device.

        Raises:
            OSError: the folder cannot be written.
        """
        self.folder.mkdir(exist_ok=True)
        path = self.folder / f"stage{len(entries)}.pt"
        cpu = image.detach().cpu().contiguous()
        atomic_write(path, lambda tmp: torch.save(cpu, tmp))
        write_json(self.state_path, {"fingerprint": self.fingerprint, "stages": entries})

    def remove(self) -> None:
        """Delete the folder (after the output is written, or to start over)."""
        shutil.rmtree(self.folder, ignore_errors=True)
