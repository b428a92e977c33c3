import dataclasses

import pytest
import torch
from stylecascade.errors import UsageError
from stylecascade.runner import run_stages, stage_sizes
from stylecascade.stages.blend import WeightedStyle, blended_targets
from stylecascade.stages.cascade import CHECK_EVERY, CONVERGENCE_WINDOW, converged, stop_point
from stylecascade.stages.guides import Region
from stylecascade.stages.losses import as_floats
from stylecascade.stages.resample import resize
from stylecascade.stages.terms import TermContext, build_objective, weighted_terms

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


class Recorder:
    def __init__(self):
        self.events = []

    def stage_started(self, index, count, stage):
        self.events.append(("start", index, count, stage.size))

    def iteration(self, done, terms):
        self.events.append(("iteration", done, as_floats(terms)["total"]))

    def stage_finished(self, result):
        self.events.append(("finish", result.index))


def _run(extractor, preset, content, style, seed=0, observer=None):
    styles = [WeightedStyle(style)]
    return list(run_stages(extractor, preset, content, styles, seed=seed, observer=observer))


def test_stages_grow_and_each_lowers_the_style_loss(
    tiny_extractor, tiny_preset, content_image, style_image
):
    results = _run(tiny_extractor(LAYERS), tiny_preset, content_image, style_image)
    assert [r.size for r in results] == [(24, 32), (48, 64)]  # (H, W)
    assert results[-1].image.shape == (1, 3, 48, 64)
    for result in results:
        assert result.loss_end["style"] < result.loss_start["style"]
        assert result.loss_end["total"] < result.loss_start["total"]
        assert result.evaluations >= tiny_preset.stages[result.index].iterations
        assert result.seconds > 0 and result.peak_memory_bytes is None
    final = results[-1].image
    assert final.min().item() >= 0.0 and final.max().item() <= 1.0


def test_each_stage_starts_from_the_previous_result(
    tiny_extractor, tiny_preset, content_image, style_image
):
    extractor = tiny_extractor(LAYERS)
    results = _run(extractor, tiny_preset, content_image, style_image)
    content_only = dataclasses.replace(tiny_preset, stages=tiny_preset.stages[1:])
    alone = _run(extractor, content_only, content_image, style_image)
    # Warm-started from stage 1, stage 2 begins with a lower style loss than a cold start.
    assert results[1].loss_start["style"] < alone[0].loss_start["style"]
    # Stage 2's first evaluation is exactly the objective at stage 1's result, upsampled.
    second = tiny_preset.stages[1]
    start = resize(results[0].image, results[1].size)
    model = tiny_preset.model
    painting = [WeightedStyle(style_image)]
    context = TermContext(
        extractor,
        resize(content_image, results[1].size),
        model.content_layers,
        lambda kind: [
            Region(
                1.0,
                model.style_layers,
                blended_targets(extractor, painting, 64, model.style_layers, kind),
            )
        ],
    )
    weights = (second.content_weight, second.style_weight, second.tv_weight)
    objective = build_objective(weighted_terms(*weights), context)
    assert as_floats(objective(start)) == results[1].loss_start


def test_observer_sees_every_evaluation(tiny_extractor, tiny_preset, content_image, style_image):
    recorder = Recorder()
    results = _run(
        tiny_extractor(LAYERS), tiny_preset, content_image, style_image, observer=recorder
    )
    starts = [e for e in recorder.events if e[0] == "start"]
    assert starts == [("start", 0, 2, (24, 32)), ("start", 1, 2, (48, 64))]  # (H, W)
    counts = [e[1] for e in recorder.events if e[0] == "iteration"]
    assert len(counts) == sum(r.evaluations for r in results)
    assert recorder.events[-1] == ("finish", 1)


@pytest.mark.parametrize("init", ["noise", "content", "style"])
def test_same_seed_same_image(tiny_extractor, tiny_preset, content_image, style_image, init):
    preset = dataclasses.replace(tiny_preset, init=init)
    a = _run(tiny_extractor(LAYERS), preset, content_image, style_image, seed=3)[-1].image
    b = _run(tiny_extractor(LAYERS), preset, content_image, style_image, seed=3)[-1].image
    assert torch.equal(a, b)


def test_the_largest_seed_runs_every_stage(tiny_extractor, tiny_preset, content_image, style_image):
    preset = dataclasses.replace(tiny_preset, init="noise")
    results = _run(tiny_extractor(LAYERS), preset, content_image, style_image, seed=2**64 - 1)
    assert len(results) == 2  # stage 2 draws with (2⁶⁴ − 1 + 1) mod 2⁶⁴ = 0
    with pytest.raises(UsageError, match="seed must be 0 … 18446744073709551615; got -1"):
        _run(tiny_extractor(LAYERS), preset, content_image, style_image, seed=-1)


def test_different_seed_different_noise(tiny_extractor, tiny_preset, content_image, style_image):
    preset = dataclasses.replace(tiny_preset, init="noise")
    a = _run(tiny_extractor(LAYERS), preset, content_image, style_image, seed=1)[-1].image
    b = _run(tiny_extractor(LAYERS), preset, content_image, style_image, seed=2)[-1].image
    assert not torch.equal(a, b)


def test_adam_stage(tiny_extractor, tiny_preset, content_image, style_image):
    stages = tuple(
        dataclasses.replace(s, optimizer="adam", lr=0.02, iterations=20) for s in tiny_preset.stages
    )
    results = _run(
        tiny_extractor(LAYERS),
        dataclasses.replace(tiny_preset, stages=stages),
        content_image,
        style_image,
    )
    assert [r.evaluations for r in results] == [20, 20]
    assert all(r.loss_end["style"] < r.loss_start["style"] for r in results)


def test_stage_too_small_for_the_network(tiny_extractor, tiny_preset, content_image, style_image):
    small = tiny_preset.with_final_size(24)  # one 24 px stage: the painting 24×15; needs 16 px
    with pytest.raises(UsageError, match="stage 1 .* needs at least 16 px"):
        _run(tiny_extractor(LAYERS), small, content_image, style_image)


def test_stage_sizes_keep_the_aspect_ratio(tiny_preset):
    assert stage_sizes((768, 1024), tiny_preset) == [(24, 32), (48, 64)]


@pytest.mark.parametrize(
    ("bests", "tolerance", "expected"),
    [
        ([100.0, 90.0, 89.995, 89.99], 0.01, True),  # 0.01 % over the last 20 evaluations
        ([100.0, 90.0, 80.0], 0.01, False),  # 12.5 %
        ([100.0, 99.99], 0.01, False),  # fewer than 20 evaluations seen
        ([100.0, 100.0, 100.0], 0.0, False),  # tolerance 0: never early
    ],
)
def test_converged_compares_the_best_loss_over_the_window(bests, tolerance, expected):
    assert CONVERGENCE_WINDOW == 2 * CHECK_EVERY
    assert converged(bests, tolerance) is expected


@pytest.mark.parametrize(("tolerance", "stop"), [(0.9, "converged"), (0.0, "cap")])
def test_a_stage_stops_when_it_converges_or_at_its_cap(
    tiny_extractor, tiny_preset, content_image, style_image, tolerance, stop
):
    stage = dataclasses.replace(tiny_preset.stages[0], iterations=60, tolerance=tolerance)
    preset = dataclasses.replace(tiny_preset, stages=(stage,))
    (result,) = _run(tiny_extractor(LAYERS), preset, content_image, style_image)
    assert result.stop == stop and result.stage.tolerance == tolerance
    if stop == "converged":  # checked every 10 evaluations, after the first 20
        assert 30 <= result.evaluations < 60 and result.evaluations % CHECK_EVERY == 0
        assert stop_point(result.loss_trace, tolerance) == result.evaluations
    else:
        assert result.evaluations >= 60
