"""Properties of the studio's HTTP surface (hypothesis): any path, name, header and body of its
routes is answered without a 500, reads and writes nothing outside its folders, and never
carries a file's contents in its answer."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi", reason="the studio extra is not installed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from studio_server import private_home, save_tiny_preset, studio_client  # noqa: E402
from stylecascade.studio.app import Studio  # noqa: E402
from stylecascade.studio.folder import StudioFolder  # noqa: E402

CANARY = "canary-5f1d2a9e7c3b4d6f8a0b1c2d3e4f5a6b"
"""Written into files outside the studio's folders: no answer may carry it."""
ROUTES = [
    ("GET", "/api/presets/{}"), ("GET", "/api/images/{}"), ("GET", "/api/masks/{}"),
    ("PUT", "/api/uploads/{}"), ("PUT", "/api/masks?painting={}"), ("POST", "/api/tries"),
    ("POST", "/api/jobs/{}/stop"), ("GET", "/api/jobs/{}/stages/{}"),
    ("POST", "/api/jobs/{}/preset"),
    ("POST", "/api/jobs/{}/print"), ("GET", "/{}"),
]  # fmt: skip
SETTINGS = settings(
    max_examples=120, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A studio on a folder of one photo, a canary file beside it and one in its parent."""
    root = tmp_path_factory.mktemp("studio")
    monkeypatch = pytest.MonkeyPatch()
    home = private_home(root, monkeypatch)
    save_tiny_preset(home)
    folder = root / "photos"
    folder.mkdir()
    from PIL import Image

    Image.new("RGB", (32, 24), "red").save(folder / "photo.png")
    for where in (root / "canary.txt", root / "canary.yaml", folder / "notes.txt"):
        where.write_text(f"{CANARY}\n")
    studio = Studio(StudioFolder(folder, folder / "studio"), "cpu")
    monkeypatch.chdir(folder)
    yield studio, root
    studio.worker.close()
    monkeypatch.undo()


def _tree(root) -> dict[str, int]:
    """Every file under ``root`` but the output folder and the saved presets, with its size."""
    kept = (root / "photos" / "studio", root / "home")
    return {
        str(p): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and not any(p.is_relative_to(k) for k in kept)
    }


def _stop_all(studio: Studio) -> None:
    for job in list(studio.worker.jobs.values()):
        studio.worker.stop(job)


NAMES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["../canary.txt", "../canary.yaml", "notes.txt", "/etc/passwd", "..", "%00",
                     "photo.png", "draft", "tiny", "\U0001f600" * 70 + ".png", "a\x00b.png"]),
)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | NAMES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=12,
)
HEADERS = st.dictionaries(
    st.sampled_from(
        ["Last-Event-ID", "Content-Length", "Content-Type", "Origin", "Cookie", "Host"]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
    max_size=3,
)


def _answer_is_clean(answer) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text)
    assert CANARY not in answer.text and "root:x:" not in answer.text


@SETTINGS
@given(
    route=st.sampled_from(ROUTES), parts=st.lists(NAMES, min_size=2, max_size=2),
    body=JSON, headers=HEADERS,
)  # fmt: skip
def test_any_request_is_answered_inside_the_folders(served, route, parts, body, headers):
    studio, root = served
    client = studio_client(studio, headers={"X-Studio-Token": getattr(studio, "token", "")})
    before = _tree(root)
    method, template = route
    path = template.format(*[quote(p.encode("utf-8", "surrogatepass"), safe="") for p in parts])
    data = json.dumps(body).encode()  # lone surrogates escaped, as browsers send them
    try:
        answer = client.request(method, path, content=data, headers=headers)
    except ValueError:  # a header httpx itself refuses to send (no request made)
        return
    _answer_is_clean(answer)
    assert _tree(root) == before  # nothing outside the output folder changed
    _stop_all(studio)


@SETTINGS
@given(settings_=st.dictionaries(st.sampled_from(
    ["photo", "paintings", "preset", "masks", "size", "color", "style_loss", "seed",
     "blend_weights"]
), JSON, max_size=6))  # fmt: skip
def test_any_try_is_answered_without_reading_outside(served, settings_):
    studio, _root = served
    client = studio_client(studio, headers={"X-Studio-Token": getattr(studio, "token", "")})
    body = {"photo": "photo.png", "paintings": ["photo.png"], "preset": "tiny", "size": 16}
    answer = client.post("/api/tries", content=json.dumps({**body, **settings_}).encode())
    _answer_is_clean(answer)
    _stop_all(studio)
