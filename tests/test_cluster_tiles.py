"""One print's tiled stages over Ray actors (``stylecascade.tile_cluster``), on a local Ray with
2 CPU actors of one thread each: the cluster's tiled evaluation equals the local one, an actor
killed mid-evaluation leaves it complete and equal, an untiled stage runs on one actor, and a
stage too large for every actor is refused before work. The tiny random-weight VGG19, images
of 96×128 px in 48 px tiles."""

import dataclasses
import logging
import re

import pytest
import torch

ray = pytest.importorskip("ray")

from stylecascade.cluster import connect  # noqa: E402
from stylecascade.errors import StyleCascadeError  # noqa: E402
from stylecascade.preset import TilingConfig  # noqa: E402
from stylecascade.records import ActorInfo  # noqa: E402
from stylecascade.stages.blend import painting_regions  # noqa: E402
from stylecascade.stages.cascade import Stage, evaluator, run_stage  # noqa: E402
from stylecascade.stages.evaluator import UntiledEvaluator  # noqa: E402
from stylecascade.stages.resample import resize  # noqa: E402
from stylecascade.stages.terms import TermContext, build_objective, weighted_terms  # noqa: E402
from stylecascade.stages.tiling import TiledEvaluator  # noqa: E402
from stylecascade.tile_actors import TileActorInfo  # noqa: E402
from stylecascade.tile_cluster import ClusterTiles, TiledCluster, start_tile_actors  # noqa: E402
from stylecascade.tile_dispatch import Worker  # noqa: E402

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
SIZE, TILE, OVERLAP = (96, 128), 48, 16
TILING = TilingConfig(tile_edge=TILE, overlap=OVERLAP, lr=0.02)
MEMORY = 256 * 2**20


pytestmark = pytest.mark.usefixtures("no_ray_address")


@pytest.fixture(scope="module")
def local_ray(ray_token_in_the_environment):
    with connect("local") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def actors(local_ray, tiny_extractor):
    """2 tile actors, 1 CPU and 1 thread each, 256 MiB of Ray memory each."""
    workers = start_tile_actors(
        tiny_extractor(LAYERS), 2, device=torch.device("cpu"), threads=1, memory_per_actor=MEMORY
    )
    cluster = TiledCluster(workers, TILING)
    yield cluster
    cluster.close()


def _objective(extractor, content, style, tiled=True):
    regions = painting_regions(extractor, style, dict.fromkeys(STYLE, 1.0))
    context = TermContext(extractor, content, {"relu4_2": 1.0}, regions, tiled=tiled)
    return build_objective(weighted_terms(1.0, 200.0, 5.0), context)


def _stage(tile_edge=TILE):
    return Stage(SIZE, 3, 64, optimizer="adam", lr=0.02, tile_edge=tile_edge, tile_overlap=16)


def _evaluations(make, start, count=2):
    """``count`` evaluations from ``make(image)``'s evaluator: ``[(value, terms, grad)]``."""
    image = start.clone().requires_grad_(True)
    evaluator = make(image)
    out = []
    for _ in range(count):
        image.grad = None
        value, terms = evaluator.evaluate()
        out.append((value, terms, image.grad.clone()))
    return out, evaluator


def _assert_equal(cluster, local):
    for (value, terms, grad), (value_l, terms_l, grad_l) in zip(cluster, local, strict=True):
        torch.testing.assert_close(value, value_l, rtol=1e-5, atol=0)
        for name in terms_l:
            torch.testing.assert_close(terms[name], terms_l[name], rtol=1e-5, atol=1e-7)
        scale = grad_l.abs().max().item()
        torch.testing.assert_close(grad, grad_l, rtol=1e-4, atol=1e-5 * scale)


@pytest.fixture
def problem(tiny_extractor, content_image, style_image):
    extractor = tiny_extractor(LAYERS)
    content = resize(content_image, SIZE)
    start = torch.rand(content.shape, generator=torch.Generator().manual_seed(1))
    return _objective(extractor, content, style_image), start


def _local(objective, start, count=2):
    def make(image):
        return TiledEvaluator(objective, image, TILE, OVERLAP, torch.Generator().manual_seed(0))

    return _evaluations(make, start, count)[0]


def _on(actors, objective, stage, on_tile=None):
    """``image → `` the cascade's evaluator of ``stage`` with the actors' runner."""

    def make(image):
        runner = actors.runner(objective, stage)
        return evaluator(objective, stage, image, torch.Generator().manual_seed(0), None, on_tile,
                         runner)  # fmt: skip

    return make


def test_cluster_tiled_evaluation_equals_local(actors, problem):
    objective, start = problem
    cluster, evaluate = _evaluations(_on(actors, objective, _stage()), start)
    _assert_equal(cluster, _local(objective, start))
    assert isinstance(evaluate.runner, ClusterTiles) and len(evaluate.runner.records) == 2
    times = actors.profile()["stages"][-1]["times"]
    assert times["tiles"] >= 12 and times["actors"] == 2 and times["deaths"] == 0
    assert times["compute"] > 0 and times["bytes_out"] > 0 and times["bytes_in"] > 0
    parts = times["waiting"] + times["put"] + times["get"] + times["reduction"] + times["driver"]
    assert parts == pytest.approx(times["wall"], rel=1e-6)


def test_a_short_tiled_stage_on_the_cluster_is_the_local_stage(actors, problem):
    objective, start = problem
    stage = _stage()
    images = []
    for runner in (actors.runner(objective, stage), None):
        image = start.clone().requires_grad_(True)
        generator = torch.Generator().manual_seed(0)
        evaluate = evaluator(objective, stage, image, generator, runner=runner)
        images.append(run_stage(0, stage, evaluate).image)
    torch.testing.assert_close(images[0], images[1], rtol=0, atol=1e-5)


def test_an_untiled_stage_runs_on_one_actor_as_locally(
    actors, tiny_extractor, content_image, style_image, problem
):
    start = problem[1]
    untiled = _objective(tiny_extractor(LAYERS), resize(content_image, SIZE), style_image, False)
    stage = dataclasses.replace(_stage(None), optimizer="lbfgs", lr=1.0)

    cluster, evaluate = _evaluations(_on(actors, untiled, stage), start)
    local, _ = _evaluations(lambda image: UntiledEvaluator(untiled, image), start)
    _assert_equal(cluster, local)
    assert type(evaluate) is UntiledEvaluator and isinstance(evaluate.runner, ClusterTiles)
    assert len(evaluate.runner.records) == 2 and evaluate.runner.records[0].compute > 0


def test_the_driver_decides_untiled_on_one_actor_or_tiles_over_actors(actors):
    free = actors.workers[0].info.free_bytes
    assert 0 < free <= MEMORY and actors.workers[0].info.per_pixel > 0
    automatic = TiledCluster(actors.workers, dataclasses.replace(TILING, tile_edge=0))
    small = automatic.prepare(0, _stage(None))
    assert small.tile_edge is None and small.optimizer == "adam"  # untiled: as given
    big = automatic.prepare(0, dataclasses.replace(_stage(None), size=(2000, 2600)))
    assert big.tile_edge is not None and big.optimizer == "adam" and big.lr == TILING.lr
    forced = actors.prepare(0, dataclasses.replace(_stage(None), size=(200, 300)))
    assert forced.tile_edge == TILE


def _fake(free, per_pixel=100.0):
    info = TileActorInfo(ActorInfo("node-a", 4321, "cpu", 1), free, per_pixel)
    return Worker(None, info, 1)


def test_a_stage_too_large_for_every_actor_is_refused_up_front():
    tiling = dataclasses.replace(TILING, tile_edge=2048, overlap=64)
    cluster = TiledCluster([_fake(256 * 2**20), _fake(128 * 2**20)], tiling)
    stages = [_stage(None), dataclasses.replace(_stage(None), size=(2560, 2560))]
    with pytest.raises(StyleCascadeError) as refused:
        cluster.check(stages)
    message = str(refused.value)
    assert message.startswith("stage 2 (2560×2560 px) in 2048 px tiles needs about ")
    assert "the largest actor, actor 1 (node-a, pid 4321), has 0.25 GiB free" in message
    fit = int(re.search(r"tiles of at most (\d+) px would fit it: tile_size \1$", message)[1])
    assert 256 <= fit < 2048 and refused.value.arguments == ("tile_size",)
    cluster.tiling = dataclasses.replace(tiling, tile_edge=fit)
    assert cluster.check(stages)[1].tile_edge == fit
    huge = [dataclasses.replace(_stage(None), size=(8192, 8192))]
    with pytest.raises(StyleCascadeError, match="not even 256 px tiles fit it: .* smaller size$"):
        TiledCluster([_fake(256 * 2**20)], TilingConfig()).check(huge)


def test_an_actor_killed_mid_evaluation_leaves_it_complete_and_equal(actors, problem, caplog):
    """Last in the file: it kills one of the module's two actors (the local Ray's 2 CPUs hold
    no third)."""
    objective, start = problem
    assert len(actors.workers) == 2
    victim = actors.workers[1]

    def kill_after_three(done, total):
        if done == 3:
            ray.kill(victim.handle, no_restart=True)

    make = _on(actors, objective, _stage(), kill_after_three)
    with caplog.at_level(logging.WARNING, logger="stylecascade.cluster"):
        cluster, _ = _evaluations(make, start)
    _assert_equal(cluster, _local(objective, start))
    assert victim not in actors.workers and len(actors.workers) == 1
    assert any(f"{victim} died during an evaluation" in r.message for r in caplog.records)
    (death,) = actors.profile()["actor_deaths"]
    assert re.fullmatch(
        rf"{re.escape(str(victim))} died during an evaluation \(its tile \d+ "
        r"runs on another\)",
        death,
    ), death
    assert actors.profile()["stages"][-1]["times"]["deaths"] == 1
