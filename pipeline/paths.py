"""Where stylecascade keeps its files: the weights cache, the user's saved presets and the
output locks."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "STYLECASCADE_HOME"
"""Environment variable: one folder for the weights cache and the saved presets."""


def home() -> Path:
    """Root of the weights cache: ``$STYLECASCADE_HOME`` if set, else the user cache folder."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("stylecascade"))


def user_preset_dir() -> Path:
    """Where ``presets save`` writes and where names are looked up after the bundled presets:
    ``$STYLECASCADE_HOME/presets`` when that variable is set, else the platform's user config
    folder (``~/.config/stylecascade/presets`` on Linux)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser() / "presets"
    return Path(platformdirs.user_config_dir("stylecascade")) / "presets"


def state_folder() -> Path:
    """What stylecascade keeps about this machine (the output locks, the learned render
    timings): ``$STYLECASCADE_HOME`` when that variable is set, else the platform's user state
    folder (``~/.local/state/stylecascade`` on Linux)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_state_dir("stylecascade"))


def lock_folder() -> Path:
    """Where the output locks live (:func:`stylecascade.files.output_lock`), out of the users'
    output folders: ``locks`` in the :func:`state_folder` (``$STYLECASCADE_HOME/locks``, else
    ``~/.local/state/stylecascade/locks`` on Linux)."""
    return state_folder() / "locks"
