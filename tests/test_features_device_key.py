"""The shared feature networks are cached per device by :func:`device_key`: on a CUDA machine
``"cuda"`` and the current ``"cuda:K"`` must be one cache entry (else a network is loaded twice and
kept twice on the GPU). The CUDA branch runs here with the current device faked."""

from __future__ import annotations

import torch

from invertkit.features.ops import device_key


def test_cuda_without_index_is_the_current_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert device_key("cuda") == "cuda:1" == device_key(torch.device("cuda", 1))
    assert device_key("cuda:0") == "cuda:0"


def test_other_devices_keep_their_names():
    assert device_key("cpu") == "cpu" == device_key(torch.device("cpu"))
    assert device_key("mps") == "mps"
