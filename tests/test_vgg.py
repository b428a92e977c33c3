import pytest
import torch
import torch.nn.functional as F
import torchvision
from stylecascade.stages.vgg import (
    CAFFE,
    LAYER_NAMES,
    VGGFeatures,
    build_vgg19_features,
    min_input_size,
)
from stylecascade.stages.vocabulary import CONV_LAYERS


def test_layer_names_follow_torchvision_indices():
    assert len(LAYER_NAMES) == 37
    assert LAYER_NAMES[0] == "conv1_1" and LAYER_NAMES[1] == "relu1_1" and LAYER_NAMES[4] == "pool1"
    assert LAYER_NAMES.index("relu4_2") == 22 and LAYER_NAMES.index("relu5_1") == 29
    assert LAYER_NAMES[-1] == "pool5" and LAYER_NAMES[-2] == "relu5_4"
    indices = [LAYER_NAMES.index(n) for n in CONV_LAYERS]
    assert indices == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def test_built_trunk_matches_torchvision_state_dict():
    ours = build_vgg19_features().state_dict()
    theirs = torchvision.models.vgg19().features.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    build_vgg19_features().load_state_dict(theirs, strict=True)


def test_extractor_is_truncated_after_deepest_layer(tiny_extractor):
    extractor = tiny_extractor(["relu1_1", "relu2_1"])
    assert len(extractor.net) == LAYER_NAMES.index("relu2_1") + 1
    out = extractor(torch.rand(1, 3, 16, 24))
    assert set(out) == {"relu1_1", "relu2_1"}
    assert out["relu2_1"].shape[-2:] == (8, 12)


@pytest.mark.parametrize(
    "pooling, kind", [("avg", torch.nn.AvgPool2d), ("max", torch.nn.MaxPool2d)]
)
def test_pooling_is_replaced(tiny_extractor, pooling, kind):
    extractor = tiny_extractor(["relu3_1"], pooling)
    pools = [m for m in extractor.net if isinstance(m, (torch.nn.AvgPool2d, torch.nn.MaxPool2d))]
    assert len(pools) == 2 and all(isinstance(p, kind) for p in pools)


def test_conv_activation_is_not_overwritten_by_relu(tiny_extractor):
    out = tiny_extractor(["conv1_1", "relu1_1"])(torch.rand(1, 3, 8, 8))
    assert (out["conv1_1"] < 0).any()
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp(min=0))


def test_caffe_preprocessing(tiny_trunk):
    extractor = VGGFeatures(tiny_trunk, ["conv1_1"], normalization=CAFFE)
    image = torch.rand(1, 3, 8, 8)
    caffe_input = image * 255 - torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1)
    expected = F.conv2d(caffe_input, tiny_trunk[0].weight, tiny_trunk[0].bias, padding=1)
    torch.testing.assert_close(extractor(image)["conv1_1"], expected, rtol=1e-5, atol=1e-3)


def test_channels_last_gives_the_same_features(tiny_trunk):
    image = torch.rand(1, 3, 32, 40)
    plain = VGGFeatures(tiny_trunk, ["relu3_1"])(image)["relu3_1"]
    fast = VGGFeatures(tiny_trunk, ["relu3_1"], channels_last=True)(image)["relu3_1"]
    torch.testing.assert_close(plain, fast, rtol=1e-4, atol=1e-4)


def test_min_input_size():
    assert min_input_size(["relu1_1"]) == 1
    assert min_input_size(["relu1_1", "relu5_1"]) == 16
    assert min_input_size(["pool5"]) == 32


def test_too_small_image_is_refused(tiny_extractor):
    with pytest.raises(ValueError, match="at least 16×16 px"):
        tiny_extractor(["relu5_1"])(torch.rand(1, 3, 12, 40))


def test_unknown_layer_is_refused(tiny_trunk):
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        VGGFeatures(tiny_trunk, ["relu6_1"])
