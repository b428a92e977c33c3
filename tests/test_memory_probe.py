"""The memory probe keeps nothing alive (a soak of the studio grew 5.8 GiB over 150 rounds: the
probe's pack hook returned each saved tensor itself, a reference cycle through autograd's graph
that Python's collector cannot see, so every probe's activations and the network's weights of
every in-memory render stayed)."""

import gc
import weakref

import torch
from stylecascade.memory import saved_bytes


def _probe(network: torch.nn.Module, edge: int) -> int:
    return saved_bytes(lambda x: network(x).relu().pow(2).mean(), torch.device("cpu"), edge)


def test_a_probe_leaves_neither_its_network_nor_its_activations_alive():
    network = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3)
    )
    weight = weakref.ref(network[2].weight)
    measured = _probe(network, 32)
    assert measured > 8 * 30 * 30 * 4  # the first conv's output at least, counted once
    del network
    gc.collect()
    assert weight() is None


def test_a_probe_counts_every_saved_tensor_once_as_before():
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    small = saved_bytes(lambda x: network(x).sum(), torch.device("cpu"), 16)
    large = saved_bytes(lambda x: network(x).sum(), torch.device("cpu"), 32)
    per_pixel = (large - small) / (32 * 32 - 16 * 16)
    assert 8 * 4 * 0.8 < per_pixel < 4 * (3 + 8 + 8)  # about the input, conv and ReLU outputs
