"""The studio in a real browser (headless Chromium through Selenium, Debian's ``chromium`` and
``chromium-driver``): upload two images, render ``draft`` at 128 px and see its stage image,
draw a mask and render at 256 px, watch stage 1's image and stage 2's current image arrive and
stop it (its best image kept), compare the two tries, save the look as a preset that ``presets
list`` lists, ask for a poster and cancel at the time gate's question, and render it at print
size into a file with its manifest. A screenshot of the page is saved at each step into the
test's folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the studio extra is not installed")
pytest.importorskip("selenium", reason="selenium (the test extra) is not installed")

from conftest import EXAMPLES  # noqa: E402
from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from studio_server import private_home, running_studio  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no browser: the studio's browser tests need Debian's chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver)",
)


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--disable-gpu"):  # fmt: skip
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    except WebDriverException as exc:
        pytest.skip(f"chromium does not start here: {exc.msg}")
    yield driver
    driver.quit()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private STYLECASCADE_HOME for the saved preset, reading the real cached weights."""
    return private_home(tmp_path, monkeypatch)


def _small_images(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for name in ("tubingen.jpg", "starry_night.jpg"):
        with Image.open(EXAMPLES / name) as img:
            img.thumbnail((256, 256))
            img.save(folder / name)
        paths.append(folder / name)
    return paths


class Page:
    """The studio's page in the browser, with screenshots numbered in ``folder``."""

    def __init__(self, driver, folder: Path) -> None:
        self.driver, self.folder, self.shots = driver, folder, 0

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def until(self, condition, seconds: float = 120, what: str = ""):
        return WebDriverWait(self.driver, seconds, 0.1).until(lambda _: condition(), what)

    def text(self, css: str) -> str:
        return self.find(css).text

    def shot(self, name: str, css: str | None = None) -> Path:
        """A screenshot, scrolled to ``css`` (else to the top)."""
        if css is None:
            self.driver.execute_script("window.scrollTo(0, 0);")
        else:
            self.driver.execute_script("arguments[0].scrollIntoView();", self.find(css))
        self.shots += 1
        path = self.folder / f"{self.shots}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def fill(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def row(self, name: str):
        return self.find(f'#paintings tr[data-name="{name}"]')

    def loaded(self, css: str) -> bool:
        return bool(self.driver.execute_script(
            "const i = document.querySelector(arguments[0]); "
            "return i && i.complete && i.naturalWidth > 0;", css))  # fmt: skip

    def error(self) -> str:
        return self.text("#error")

    def live(self) -> int | None:
        return self.driver.execute_script("return live;")

    def render(self) -> int:
        before = self.live()
        self.find("#render").click()
        self.until(lambda: self.live() != before or self.error(), 30, "a new try")
        assert not self.error()
        return int(self.live())

    def state(self, job: int) -> str:
        script = "const j = jobs[arguments[0]]; return j && j.summary ? j.summary.state : null;"
        return self.driver.execute_script(script, job)  # null until its first event

    def stage_running(self, job: int, stage: int) -> bool:
        """Whether ``stage`` (1-based) of try ``job`` has made 5 evaluations, the stages
        before it shown."""
        caption = self.driver.execute_script("return (jobs[arguments[0]] || {}).progress;", job)
        caption = caption or ""
        done = int(caption.split(": ")[1].split("/")[0]) if ": " in caption else 0
        shown = len(self.all("#stages figure")) == stage - 1
        return shown and caption.startswith(f"stage {stage}/") and done >= 5


def _draw_mask(page: Page) -> None:
    page.row("starry_night.jpg").find_element(By.CSS_SELECTOR, ".mask-button").click()
    page.until(lambda: page.driver.execute_script("return $('mask-canvas').width > 0;"), 10)
    canvas = page.find("#mask-canvas")
    width = canvas.size["width"]
    strokes = ActionChains(page.driver).move_to_element_with_offset(canvas, -width // 2 + 5, -60)
    strokes.click_and_hold()
    for row in range(3):  # the sky: three strokes across the upper part of the photo
        for _ in range(24):
            strokes.move_by_offset((width - 10) // 24 * (1 if row % 2 == 0 else -1), 0)
        strokes.move_by_offset(0, 25)
    strokes.release().perform()
    page.shot("mask", "#mask-dialog")
    page.find("#mask-save").click()
    page.until(lambda: "✓" in page.row("starry_night.jpg").text, 10, "the mask kept")


def _inputs(page: Page, photo: Path, painting: Path) -> None:
    """Upload the two images, pick the photo, the painting, draft and 128 px."""
    page.find("#upload").send_keys(f"{photo}\n{painting}")
    page.until(lambda: len(page.all("#paintings tbody tr")) == 2, 30, "two images")
    Select(page.find("#photo")).select_by_value("tubingen.jpg")
    page.row("starry_night.jpg").find_element(By.CSS_SELECTOR, "input").click()
    Select(page.find("#preset")).select_by_value("draft")
    page.until(lambda: "β 20" in page.text("#pv-style_weight"), 10, "the preset's values")
    page.fill("#size", "128")
    page.shot("inputs")


def _tries(page: Page, folder: Path) -> tuple[int, int]:
    """A try at 128 px to its end, then a masked one at 256 px stopped in stage 2."""
    first = page.render()  # draft --size 128: draft's 128 px stage
    page.until(lambda: page.state(first) == "done", 120, "the first try")
    page.until(lambda: page.loaded("#stages figure img"), 10, "its stage image")
    assert any(r in page.text("#stop-reason") for r in ("converged", "cap", "stalled"))
    page.shot("first-done")

    _draw_mask(page)
    page.fill("#style_weight", "5")
    page.fill("#size", "256")  # two stages: 128 px, then 256 px
    second = page.render()
    page.until(lambda: page.stage_running(second, 2), 120, "stage 1's image, stage 2 on")
    assert "stage 2/2" in page.text("#current-caption")
    page.shot("mid-render")
    page.find("#stop").click()
    page.until(lambda: page.state(second) == "stopped", 60, "the stop")
    assert "stage 2: stopped after" in page.text("#stop-reason")
    assert len(page.all("#stages figure")) == 2  # stage 1 and stage 2's best so far
    page.shot("stopped")
    assert len(list((folder / "studio" / "masks").glob("starry_night-mask-*.png"))) == 1
    return first, second


def _compare(page: Page) -> None:
    """Both tries in the strip, A and B side by side, then under the slider."""
    strip = page.all("#strip figure")
    assert len(strip) == 2 and "masked" in strip[1].text and "style×5" in strip[1].text
    strip[0].find_element(By.CSS_SELECTOR, ".pick-a").click()
    page.all("#strip figure")[1].find_element(By.CSS_SELECTOR, ".pick-b").click()
    page.until(lambda: page.loaded("#pair-a") and page.loaded("#pair-b"), 10, "A and B")
    page.shot("compare", "#compare")
    Select(page.find("#compare-mode")).select_by_value("slider")
    assert page.find("#slider").is_displayed()
    page.shot("compare-slider", "#compare")


def _keep_and_print(page: Page) -> None:
    """Save try A as a preset that ``presets list`` lists; ask for a 30 × 40 cm print, which
    the time gate asks about (cancelled); print it at 64 px."""
    page.fill("#preset-name", "browser-look")
    page.find("#save-preset").click()
    page.until(lambda: "saved preset browser-look" in page.text("#saved"), 10, "saved")
    listed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "stylecascade"), "presets", "list"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert "browser-look" in listed.stdout
    page.fill("#print_size", "30x40cm")  # 4724 px of draft on a CPU: hours, so it asks
    page.find("#print").click()
    dialog = page.find("#confirm-dialog")
    page.until(lambda: dialog.is_displayed() or page.error(), 60, "the time gate's question")
    assert "would take up to" in page.text("#confirm-text") and "Start it" in dialog.text
    page.shot("asked", "#confirm-dialog")
    page.find("#confirm-cancel").click()
    page.until(lambda: not dialog.is_displayed(), 10, "the dialog closed")
    assert not page.error() and "print" not in page.text("#prints")  # nothing started
    page.fill("#print_size", "1x0.75in")
    page.fill("#dpi", "64")
    page.find("#print").click()
    page.until(lambda: "done" in page.text("#prints") or page.error(), 120, "the print")
    page.shot("printed", "#keep")
    assert not page.error()


def test_the_studio_in_a_browser(tmp_path, browser, home):
    photo, painting = _small_images(tmp_path / "files")
    folder = tmp_path / "studio-folder"
    folder.mkdir()
    page = Page(browser, tmp_path)
    with running_studio(folder) as (url, studio):
        browser.get(f"{url}/?token={studio.token}")  # the address the studio prints
        page.until(lambda: len(page.all("#preset option")) >= 3, 30, "the presets")
        page.shot("empty")
        _inputs(page, photo, painting)
        first, second = _tries(page, folder)
        _compare(page)
        _keep_and_print(page)
        output = folder / "studio" / "prints" / f"tubingen-try{first}-64px.png"
        assert str(output) in page.text("#prints")
    assert Image.open(output).size[0] == 64
    manifest = json.loads(output.with_suffix(".json").read_text())
    assert manifest["status"] == "done" and manifest["preset"]["name"] == "draft"
    [masked] = studio.worker.jobs[second].look.styles
    assert Path(masked.mask).parent == folder / "studio" / "masks"
