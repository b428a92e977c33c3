"""The stop handle the studio stops renders with, off the main thread: an in-memory render keeps
its best image so far (manifest ``stopped``), a render into files saves its checkpoint as an
interrupted one does (the cascade checks the handle between evaluations)."""

from __future__ import annotations

import threading

import pytest
from stylecascade import render
from stylecascade.launch import launch
from stylecascade.request import RenderRequest
from stylecascade.stages.stopping import StopHandle, Stopped


class StopAfterFirstStage:
    """An observer that, when stage 1 ends, stops the render from another thread (and waits
    for that thread, so the stop is set before stage 2's first evaluation)."""

    def __init__(self, stop: StopHandle) -> None:
        self.stop, self.evaluations = stop, 0

    def stage_started(self, *args) -> None:
        pass

    def iteration(self, done, terms) -> None:
        self.evaluations += 1

    def stage_finished(self, result) -> None:
        if result.index == 0:
            stopper = threading.Thread(target=self.stop.stop)
            stopper.start()
            stopper.join()

    batch_started = input_started = input_finished = stage_started  # launch's batch calls


def test_the_handle_is_thread_safe_and_raises_a_keyboard_interrupt():
    stop = StopHandle()
    stop.check()  # not set: nothing
    threads = [threading.Thread(target=stop.stop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stop.stopped
    with pytest.raises(Stopped) as caught:
        stop.check()
    assert isinstance(caught.value, KeyboardInterrupt)


def test_an_in_memory_render_stopped_keeps_its_stages_and_best_image(photos, tiny_preset):
    stop = StopHandle()
    result = render(
        photos[0], photos[1], preset=tiny_preset, device="cpu", progress=StopAfterFirstStage(stop),
        stop=stop,
    )  # fmt: skip
    assert result.manifest["status"] == "stopped"
    assert result.manifest["stopped"] == {"stage": 2, "evaluations": 1}
    assert [s.size for s in result.stages] == [(32, 24), (64, 48)]
    assert result.image.size == (64, 48) and len(result.manifest["stages"]) == 1


def test_a_render_into_files_stopped_keeps_its_checkpoint(photos, tiny_preset, tmp_path):
    stop = StopHandle()
    output = tmp_path / "out.png"
    request = RenderRequest.of(
        photos=[photos[0]], styles=[photos[1]], preset=tiny_preset, output=output, device="cpu",
        quiet=True,
    )  # fmt: skip
    [outcome] = launch(request, observer=StopAfterFirstStage(stop), stop=stop)
    assert outcome.status == "interrupted" and outcome.exit_code == 130
    assert outcome.message.startswith("stopped in stage 2/2 after 1 evaluations; best image")
    assert (tmp_path / "out.png.checkpoint" / "partial.png").is_file()
    assert not output.exists()
