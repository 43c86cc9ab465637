"""Perceptual feature nets: torchvision VGG19 key layout, weight loading (path, cache, local download),
and the seeded random-feature stand-in."""
import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.models.perceptual import (RandomConvFeatures, VGG19Features, build_feature_net, vgg19_layers)

# torchvision.models.vgg19().features: indices of the 16 convs (ReLU after each, max-pools at 4, 9, 18, 27, 36)
TORCHVISION_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
TORCHVISION_CONV_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]


@pytest.fixture(autouse=True)
def _one_thread():
    # the test machine's cores are shared: one intra-op thread avoids thread-pool contention
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _torchvision_state(up_to_index, seed=0):
    """A random state dict with torchvision's vgg19 key names and shapes for convs <= up_to_index,
    plus one of the classifier keys a real file carries (which must be ignored)."""
    g = torch.Generator().manual_seed(seed)
    state, c_prev = {}, 3
    for idx, c in zip(TORCHVISION_CONV_INDICES, TORCHVISION_CONV_WIDTHS):
        if idx > up_to_index:
            break
        state[f"features.{idx}.weight"] = torch.randn(c, c_prev, 3, 3, generator=g) * 0.1
        state[f"features.{idx}.bias"] = torch.randn(c, generator=g) * 0.1
        c_prev = c
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


@pytest.fixture
def weights_file(tmp_path):
    # conv2_2 is features.7; include conv3_1 (features.10) to show deeper keys are ignored
    state = _torchvision_state(10)
    path = tmp_path / "vgg19-test.pth"
    torch.save(state, path)
    return path, state


def test_layer_indices_follow_torchvision():
    names = vgg19_layers()
    assert list(names.values()) == TORCHVISION_CONV_INDICES
    assert names["conv5_4"] == 34 and names["conv2_2"] == 7


def test_full_key_layout_and_shapes():
    net = VGG19Features("conv5_4")
    state = net.state_dict()
    assert set(state) == {f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES for p in ("weight", "bias")}
    c_prev = 3
    for i, c in zip(TORCHVISION_CONV_INDICES, TORCHVISION_CONV_WIDTHS):
        assert state[f"features.{i}.weight"].shape == (c, c_prev, 3, 3)
        c_prev = c
    assert len(net.features) == 36 and isinstance(net.features[35], nn.ReLU)  # phi_5,4: after the ReLU
    assert not any(p.requires_grad for p in net.parameters())


def test_load_random_torchvision_state_strictly(weights_file):
    path, state = weights_file
    net = VGG19Features.pretrained("conv2_2", weights=path)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key])
    assert net.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # forward = ImageNet-normalised input through conv-ReLU-conv-ReLU-pool-conv-ReLU-conv-ReLU
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = ((x + 1) / 2 - mean) / std
    for i in (0, 2, 5, 7):
        if i == 5:
            h = F.max_pool2d(h, 2)
        h = F.relu(F.conv2d(h, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))
    assert torch.allclose(net(x), h, atol=1e-5)
    grey = torch.rand(1, 1, 16, 16) * 2 - 1
    assert torch.allclose(net(grey), net(grey.expand(-1, 3, -1, -1)))


def test_bad_weight_files_are_clear_errors(tmp_path):
    state = _torchvision_state(10)
    bad = {
        "missing": {k: v for k, v in state.items() if k != "features.7.bias"},
        "bn_layout": {**state, "features.1.running_mean": torch.zeros(64)},  # vgg19_bn-style keys
        "shape": {**state, "features.5.weight": torch.zeros(128, 32, 3, 3)},
        "not_a_dict": torch.zeros(3),
    }
    for name, content in bad.items():
        path = tmp_path / f"{name}.pth"
        torch.save(content, path)
        with pytest.raises(GanforgeError, match=str(path)):
            VGG19Features.pretrained("conv2_2", weights=path)
    with pytest.raises(GanforgeError, match="does not exist"):
        VGG19Features.pretrained("conv2_2", weights=tmp_path / "nowhere.pth")
    with pytest.raises(GanforgeError, match="conv5_4"):
        VGG19Features("conv5_5")


def test_cache_dir_from_environment(tmp_path, monkeypatch, weights_file):
    path, state = weights_file
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(GanforgeError, match="download=True") as e:
        VGG19Features.pretrained("conv2_2")
    assert "'random'" in str(e.value) and str(tmp_path / "cache") in str(e.value)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "vgg19-dcbb9e9d.pth").write_bytes(path.read_bytes())
    net = VGG19Features.pretrained("conv2_2")
    assert torch.equal(net.state_dict()["features.0.weight"], state["features.0.weight"])


@pytest.fixture
def http_dir(local_server):
    """(the folder tmp_path/serve, its base URL) served on 127.0.0.1 (conftest.local_server)."""
    base, served, _ = local_server
    return served, base


def test_download_from_local_server(http_dir, tmp_path, weights_file):
    served, base = http_dir
    path, state = weights_file
    data = path.read_bytes()
    name = f"vgg19-{hashlib.sha256(data).hexdigest()[:8]}.pth"  # torchvision's name-<sha256 prefix> scheme
    (served / name).write_bytes(data)
    cache = tmp_path / "cache"
    with pytest.raises(GanforgeError, match="download=True"):
        VGG19Features.pretrained("conv2_2", cache_dir=cache, url=f"{base}/{name}")
    net = VGG19Features.pretrained("conv2_2", download=True, cache_dir=cache, url=f"{base}/{name}")
    assert torch.equal(net.state_dict()["features.7.weight"], state["features.7.weight"])
    assert sorted(p.name for p in cache.iterdir()) == [name]  # renamed into place, no temporary left
    (served / name).unlink()  # now only the cache has it
    assert VGG19Features.pretrained("conv2_2", cache_dir=cache, url=f"{base}/{name}").weights_sha256 == \
        hashlib.sha256(data).hexdigest()


def test_download_hash_mismatch_and_missing_file(http_dir, tmp_path, weights_file):
    served, base = http_dir
    data = weights_file[0].read_bytes()
    wrong = "00000000" if not hashlib.sha256(data).hexdigest().startswith("00000000") else "11111111"
    (served / f"vgg19-{wrong}.pth").write_bytes(data)
    cache = tmp_path / "cache"
    with pytest.raises(GanforgeError, match="discarded"):
        VGG19Features.pretrained("conv2_2", download=True, cache_dir=cache, url=f"{base}/vgg19-{wrong}.pth")
    assert list(cache.iterdir()) == []  # nothing half-written or unverified is left behind
    with pytest.raises(GanforgeError, match="could not download"):
        VGG19Features.pretrained("conv2_2", download=True, cache_dir=cache, url=f"{base}/vgg19-abcdef12.pth")
    assert list(cache.iterdir()) == []


def test_random_features_are_seeded_frozen_and_leave_the_global_rng_alone():
    before = torch.get_rng_state()
    a, b, c = RandomConvFeatures(seed=0), RandomConvFeatures(seed=0), RandomConvFeatures(seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert not any(p.requires_grad for p in a.parameters())
    x.requires_grad_(True)
    F.mse_loss(a(x), a(torch.zeros_like(x))).backward()
    assert x.grad.abs().sum() > 0  # gradients reach the images, not the frozen net


def test_random_features_mse_is_the_mean_of_per_scale_mses():
    net = RandomConvFeatures(channels=1, width=4, scales=3, seed=5)
    x, y = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    per_scale, hx, hy = [], x, y
    for s, block in enumerate(net.blocks):
        if s:
            hx, hy = F.avg_pool2d(hx, 2), F.avg_pool2d(hy, 2)
        hx, hy = block(hx), block(hy)
        per_scale.append(F.mse_loss(hx, hy))
    assert torch.allclose(F.mse_loss(net(x), net(y)), torch.stack(per_scale).mean(), rtol=1e-5)
    assert F.mse_loss(net(x), net(x)) == 0


def test_build_feature_net(weights_file):
    path, _ = weights_file
    net, desc = build_feature_net()  # the offline default
    assert isinstance(net, RandomConvFeatures) and desc["name"] == "random" and desc["seed"] == 0
    assert build_feature_net(channels=1)[0].blocks[0][0].in_channels == 1
    json.dumps(desc)
    net, desc = build_feature_net("vgg19", weights=path, layer="conv2_2")
    assert isinstance(net, VGG19Features) and net.layer == "conv2_2"
    assert desc["name"] == "vgg19" and desc["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    json.dumps(desc)
    with pytest.raises(GanforgeError, match="did you mean 'vgg19'"):
        build_feature_net("vgg")
    with pytest.raises(GanforgeError, match="seed"):
        build_feature_net("random", weights=path)
