"""README's commands, run as a newcomer runs them: in the order written, then all again.

The quick start's render and every command of "Using it" run in one bash script from a folder
that holds the repository's ``examples/`` and ``presets/``, with ``stylecascade`` on PATH and a
fresh ``STYLECASCADE_HOME`` (the cached weights linked in). Only the sizes are made small
(:func:`small`): a render's ``--size`` becomes 64 px (one is added where none is given), a
print's ``--dpi`` one that makes it about 80 px (a 30 × 40 cm poster: 6 DPI, 94 px),
``inspect``'s ``--size`` 32 px. The second run must succeed too, and keep what the first one
made.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from stylecascade.printsize import print_long_edge
from stylecascade.weights import cached_path

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"render": "64", "inspect": "32"}


def bash_blocks(markdown: str, after: str) -> list[str]:
    """The ```bash blocks of ``markdown`` under the heading ``after`` (up to the next ``## ``)."""
    section = markdown.split(after, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def commands(block: str) -> list[str]:
    """A block's commands: comments dropped, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = (line.split(" #", 1)[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def small(command: str) -> str:
    """``command`` at the small sizes of this test (see the module docstring)."""
    words = shlex.split(command)
    if len(words) < 2 or words[0] != "stylecascade" or words[1] not in SMALL:
        return command
    size = SMALL[words[1]]
    if "--size" in words:
        words[words.index("--size") + 1] = size
    elif "--print-size" in words:  # the DPI that makes the print's long edge about 80 px
        inches = print_long_edge(words[words.index("--print-size") + 1], 100.0) / 100
        words[words.index("--dpi") + 1] = str(math.ceil(80 / inches))
    elif words[1] == "render":
        words += ["--size", size]
    return shlex.join(words)


def readme_script() -> str:
    """The quick start's render, then every command of "Using it", as one bash script."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = bash_blocks(readme, "## Quick start")[0]
    quick = [c.split("&& ")[-1].replace(".venv/bin/stylecascade", "stylecascade") for c in
             commands(setup) if "stylecascade render" in c]  # fmt: skip
    using = [c for block in bash_blocks(readme, "## Using it") for c in commands(block)]
    assert len(quick) == 1 and len(using) >= 10, (quick, using)
    return "set -euo pipefail\n" + "\n".join(small(c) for c in quick + using) + "\n"


def test_small_keeps_the_command_and_shrinks_its_sizes():
    assert small("stylecascade render a.jpg -s b.jpg -o out/a.png") == (
        "stylecascade render a.jpg -s b.jpg -o out/a.png --size 64"
    )
    assert small("stylecascade render a.jpg --print-size 30x40cm --dpi 300").endswith("--dpi 6")
    assert small("stylecascade inspect a.jpg -s b.jpg --size 128 -o p/").endswith("32 -o p/")
    assert small("stylecascade presets list") == "stylecascade presets list"


@pytest.mark.skipif(not cached_path("caffe").is_file(), reason="needs the cached weights")
def test_readme_commands_run_in_order_and_again(tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (home / "weights").mkdir(parents=True)
    (home / "weights" / cached_path("caffe").name).symlink_to(cached_path("caffe"))
    for name in ("examples", "presets"):
        (work / name).symlink_to(ROOT / name)
    script = readme_script()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "STYLECASCADE_HOME": str(home), "COLUMNS": "80"}
    runs = []
    for _ in range(2):
        run = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, f"{script}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        runs.append(sorted(p.relative_to(work) for p in (work / "out").rglob("*")))
    made = {str(p) for p in runs[0]}
    assert {"out/tubingen-starry_night.png", "out/blend.png", "out/print.tif"} <= made
    assert any(p.startswith("out/styled/tubingen-") for p in made)
    assert runs[1] == runs[0]  # the second run kept every file and added none
    assert not [p for p in made if Path(p).name.endswith(".lock") or ".checkpoint" in p]


def test_no_command_of_using_it_renders_above_1024_px():
    """Issue 37, friction 2: "Using it", run in order as it invites, takes minutes on a CPU, not
    hours: no render there is larger than 1024 px (the 30 × 40 cm poster is shown with its cost
    under "Prints", outside that block)."""
    from stylecascade.printsize import final_long_edge

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    renders = [
        shlex.split(c) for block in bash_blocks(readme, "## Using it") for c in commands(block)
        if c.startswith("stylecascade render")
    ]  # fmt: skip
    assert len(renders) >= 5
    for words in renders:
        given = {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")}
        edge = final_long_edge(
            int(given["--size"]) if "--size" in given else None,
            given.get("--print-size"),
            float(given["--dpi"]) if "--dpi" in given else None,
            given.get("--bleed"),
        )
        assert (edge or 512) <= 1024, shlex.join(words)  # no size: draft's 512 px on a CPU
