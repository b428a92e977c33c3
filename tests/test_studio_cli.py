"""``stylecascade studio`` on the command line: the hint without its extra, a folder that is not
one, the studio kept out of ``import stylecascade`` and the command line's start-up, and the
command itself serving the page until Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from stylecascade.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_without_the_extra_one_line_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m.startswith("stylecascade.studio")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi fails as if missing
    result = runner.invoke(app, ["studio", str(tmp_path)])
    assert result.exit_code == 1
    hint = "error: the studio needs its extra: pip install 'stylecascade[studio]' (in a clone"
    assert result.output.startswith(hint) and "-e '.[studio]')" in result.output


def test_a_missing_folder_is_one_line(tmp_path):
    result = runner.invoke(app, ["studio", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: studio folder {tmp_path / 'nope'}: no such folder"


def test_a_port_in_use_is_one_line(tmp_path):
    pytest.importorskip("fastapi", reason="the studio extra is not installed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["studio", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port} (")


def test_the_studio_stays_out_of_the_package_and_the_command_lines_start_up():
    code = (
        "import sys, stylecascade, stylecascade.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn') "
        "or m.startswith('stylecascade.studio')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_the_command_serves_the_page_until_ctrl_c(tmp_path):
    """The installed console script on a free port: the page answers (time to the first 200
    printed), Ctrl-C ends it."""
    pytest.importorskip("fastapi", reason="the studio extra is not installed")
    script = os.path.join(os.path.dirname(sys.executable), "stylecascade")
    began = time.perf_counter()
    process = subprocess.Popen(
        [script, "studio", str(tmp_path), "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("studio: http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[1]
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as page:
                    assert page.status == 200 and b"stylecascade studio" in page.read()
                    break
            except OSError:
                assert time.perf_counter() - began < 30 and process.poll() is None
                time.sleep(0.05)
        print(f"stylecascade studio: first 200 after {time.perf_counter() - began:.2f} s")
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
    assert code == 0, process.stderr.read()
    assert not (tmp_path / "studio").exists()  # nothing written until the page asks
