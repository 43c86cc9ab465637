"""pix2pix U-Net / PatchGAN, CycleGAN ResNet generator and image pool: shapes, noise, receptive field, pool."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.viz import save_columns
from ganforge.models.image2image import (ImagePool, NoiseDropout, PatchDiscriminator, ResnetBlock,
                                         ResnetGenerator, UNetGenerator, patch_layers_for,
                                         patch_receptive_field)

RESOLUTIONS = [8, 16, 32, 64]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread():
    # the test machine's cores are shared: one intra-op thread avoids thread-pool contention
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------- U-Net

@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("c_in,c_out", [(1, 1), (3, 3), (1, 3)])
def test_unet_shapes_range_and_gradients(resolution, c_in, c_out):
    G = UNetGenerator(c_in, c_out, resolution, width=4, max_width=16)
    x = torch.rand(2, c_in, resolution, resolution) * 2 - 1
    fake = G(x)
    assert fake.shape == (2, c_out, resolution, resolution)
    assert torch.isfinite(fake).all() and fake.abs().max() <= 1
    fake.square().mean().backward()
    assert all(p.grad is not None for p in G.parameters())


def test_unet_channel_layout_is_the_papers_scaled():
    # pix2pix appendix 6.1.1 at 256 px: encoder C64-C128-C256-C512 x5,
    # decoder CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128
    enc = [64, 128, 256, 512, 512, 512, 512, 512]
    dec_in = [512, 1024, 1024, 1024, 1024, 512, 256, 128]
    G = UNetGenerator(3, 3, 256, width=2, max_width=16)  # 1/32 of the paper's widths
    assert [d[0].out_channels for d in G.downs] == [c // 32 for c in enc]
    assert [u[0].in_channels for u in G.ups] == [c // 32 for c in dec_in]
    dropout_at = [i for i, u in enumerate(G.ups) if any(isinstance(m, NoiseDropout) for m in u)]
    assert dropout_at == [0, 1, 2]  # the first three decoder layers (the "D" in CD512-CD1024-CD1024)
    # no norm on the outermost and innermost encoder layers
    has_norm = [any(isinstance(m, nn.BatchNorm2d) for m in d) for d in G.downs]
    assert has_norm == [False] + [True] * 6 + [False]


def test_unet_small_image_keeps_dropout_off_the_output_layer():
    G = UNetGenerator(1, 1, 8, width=4)
    flags = [any(isinstance(m, NoiseDropout) for m in u) for u in G.ups]
    assert flags == [True, True, False]


def test_unet_dropout_is_noise_in_train_and_in_pix2pix_test_mode():
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    G = UNetGenerator(1, 1, 16, width=8)
    assert not torch.equal(G(x), G(x))  # train mode
    G.eval()
    with torch.no_grad():
        assert not torch.equal(G(x), G(x))  # test_time_dropout=True: the paper keeps dropout at test time
    G_det = UNetGenerator(1, 1, 16, width=8, test_time_dropout=False).eval()
    with torch.no_grad():
        assert torch.equal(G_det(x), G_det(x))
    G_off = UNetGenerator(1, 1, 16, width=8, dropout=0.0)
    assert not any(isinstance(m, NoiseDropout) for m in G_off.modules())
    assert torch.equal(G_off(x), G_off(x))  # no dropout: train mode is deterministic too


def test_unet_norm_option():
    instance = UNetGenerator(1, 1, 16, width=4, norm="instance").modules()
    assert any(isinstance(m, nn.InstanceNorm2d) for m in instance)
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in UNetGenerator(1, 1, 16, width=4).modules())
    # layer: one GroupNorm group per image (the same in train and eval mode, unlike batch norm)
    assert any(isinstance(m, nn.GroupNorm) for m in UNetGenerator(1, 1, 16, width=4, norm="layer").modules())
    with pytest.raises(ValueError, match="norm"):
        UNetGenerator(1, 1, 16, norm="group")


@pytest.mark.parametrize("resolution", [4, 12, 48, 0])
def test_unet_rejects_non_power_of_two_resolutions(resolution):
    with pytest.raises(ValueError, match="power-of-two") as e:
        UNetGenerator(3, 3, resolution)
    assert isinstance(e.value, GanforgeError)


def test_unet_rejects_wrong_input_size():
    with pytest.raises(ValueError, match="16x16"):
        UNetGenerator(1, 1, 16, width=4)(torch.zeros(1, 1, 32, 32))


# ------------------------------------------------------------------------------------------- PatchGAN

def test_receptive_field_formula():
    assert patch_receptive_field(3) == 70  # pix2pix's 70x70 PatchGAN
    assert [patch_receptive_field(n) for n in (1, 2, 4)] == [16, 34, 142]  # paper's 16x16, 34x34, 142 px
    assert patch_layers_for(256) == 3 and patch_layers_for(64) == 2 and patch_layers_for(8) == 1


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_receptive_field_matches_the_network(layers):
    D = PatchDiscriminator(2, width=4, layers=layers).double().eval()  # eval: BN does not mix pixels
    x = torch.randn(1, 2, 128, 128, dtype=torch.float64, requires_grad=True)
    out = D(x)
    h, w = out.shape[-2:]
    out[0, 0, h // 2, w // 2].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero()
    assert rows.max() - rows.min() + 1 == patch_receptive_field(layers) == D.receptive_field
    assert cols.max() - cols.min() + 1 == patch_receptive_field(layers)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_patch_discriminator_shapes_on_concatenated_pairs(resolution, channels):
    layers = patch_layers_for(resolution)
    D = PatchDiscriminator(2 * channels, width=4, layers=layers, norm="instance")
    pair = torch.randn(2, 2 * channels, resolution, resolution)  # concat(x, y)
    logits = D(pair)
    side = resolution // 2 ** layers - 2
    assert logits.shape == (2, 1, side, side) and side >= 1
    logits.mean().backward()
    assert all(p.grad is not None for p in D.parameters())


def test_patch_discriminator_too_small_image_is_a_clear_error():
    with pytest.raises(ValueError, match="layers=1"):
        PatchDiscriminator(3, width=4, layers=3)(torch.zeros(1, 3, 16, 16))


# ------------------------------------------------------------------------------------- ResNet generator

@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_generator_shapes(resolution, channels):
    G = ResnetGenerator(channels, channels, width=4, blocks=6)
    fake = G(torch.rand(2, channels, resolution, resolution) * 2 - 1)
    assert fake.shape == (2, channels, resolution, resolution)
    assert torch.isfinite(fake).all() and fake.abs().max() <= 1
    fake.mean().backward()
    assert all(p.grad is not None for p in G.parameters())


def test_resnet_generator_layout():
    for blocks in (6, 9):
        G = ResnetGenerator(3, 3, width=4, blocks=blocks)
        assert sum(isinstance(m, ResnetBlock) for m in G.modules()) == blocks
    G = ResnetGenerator(3, 3, width=4, blocks=6)
    assert isinstance(G.net[0], nn.ReflectionPad2d) and isinstance(G.net[-1], nn.Tanh)
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in G.modules()) > 0
    assert [m.stride for m in G.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)] == [(2, 2)] * 2
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == 2
    with pytest.raises(ValueError, match="multiples of 4"):
        G(torch.zeros(1, 3, 10, 10))


# ------------------------------------------------------------------------------------------ image pool

def _marked(start, n):
    """n distinct 1x2x2 images whose value is their index."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def _ids(batch):
    return batch[:, 0, 0, 0].long().tolist()


def test_pool_returns_the_first_size_images_as_is():
    pool = ImagePool(50)
    for k in range(10):
        batch = _marked(5 * k, 5)
        assert torch.equal(pool(batch), batch)
    assert len(pool) == 50


def test_pool_swaps_half_with_stored_images_once_full():
    pool = ImagePool(50, seed=1)
    pool(_marked(0, 50))
    out = _ids(pool(_marked(50, 400)))
    swapped = [(i, o) for i, o in enumerate(out, start=50) if o != i]
    assert 0.4 < len(swapped) / 400 < 0.6
    # a swapped-in image is an earlier one, and leaves the pool when returned, so it comes back only once
    assert all(o < i for i, o in swapped)
    assert len({o for _, o in swapped}) == len(swapped)


def test_pool_detaches_and_size_zero_passes_through():
    fake = torch.randn(3, 1, 2, 2, requires_grad=True)
    assert not ImagePool(0)(fake).requires_grad
    assert torch.equal(ImagePool(0)(fake), fake)
    assert not ImagePool(50)(fake).requires_grad


def test_pool_uses_its_own_generator():
    a, b = ImagePool(50, seed=3), ImagePool(50, seed=3)
    a(_marked(0, 50)), b(_marked(0, 50))
    torch.manual_seed(1)
    out_a = a(_marked(50, 40))
    torch.manual_seed(2)
    out_b = b(_marked(50, 40))
    assert torch.equal(out_a, out_b)
    c = ImagePool(50, seed=4)
    c(_marked(0, 50))
    assert not torch.equal(c(_marked(50, 40)), out_a)


def test_pool_state_dict_round_trip_resumes_exactly():
    a = ImagePool(50, seed=7)
    for k in range(6):
        a(_marked(10 * k, 10))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # plain tensors only
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    b = ImagePool(50, seed=99)
    b.load_state_dict(state)
    for k in range(6, 12):
        assert torch.equal(a(_marked(10 * k, 10)), b(_marked(10 * k, 10)))
    with pytest.raises(GanforgeError, match="pool size"):
        ImagePool(20).load_state_dict(state)


def test_empty_pool_state_round_trip():
    b = ImagePool(5, seed=2)
    b.load_state_dict(ImagePool(5, seed=1).state_dict())
    assert len(b) == 0
    assert torch.equal(b(_marked(0, 5)), _marked(0, 5))


def test_labelled_columns_place_each_image_under_its_label(tmp_path):
    cols = {name: torch.rand(5, 3, 4, 4) * 2 - 1 for name in ("input", "output", "target")}
    path = save_columns(cols, tmp_path / "c.png", rows=2, upscale=3)
    page = np.asarray(Image.open(path).convert("RGB")).astype(int)
    header, cell = 14, (4 + 2) * 3
    assert page.shape == (header + 3 * (2 * 6 + 2), 3 * (9 * 6 + 2), 3)        # 2 rows, 3 groups of 3 columns
    assert (page[:header] < 128).any()                                        # the labels are drawn

    def at(row, column):                                                      # the top-left pixel of a cell
        return page[header + 2 * 3 + row * cell, 2 * 3 + column * cell]
    want = ((cols["output"][4, :, 0, 0].clamp(-1, 1) + 1) * 127.5).round().int().numpy()
    assert (at(0, 2 * 3 + 1) == want).all()                                   # image 4: row 0 of group 2
    assert (at(1, 2 * 3 + 1) == 255).all()                                    # no image 5: a white cell
    with pytest.raises(ValueError, match="as many images of one size"):
        save_columns({"a": torch.zeros(2, 1, 4, 4), "b": torch.zeros(3, 1, 4, 4)}, tmp_path / "bad.png")
