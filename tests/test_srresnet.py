"""SRResNet generator and SRGAN discriminator: shapes for x2/x4, pixel-shuffle stages, global skip."""
import pytest
import torch
from torch import nn

from ganforge.models.srresnet import SRDiscriminator, SRResNet


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


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("lr_side", [4, 8, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_srresnet_shapes(scale, lr_side, channels):
    G = SRResNet(channels, width=8, blocks=2, scale=scale)
    sr = G(torch.rand(2, channels, lr_side, lr_side) * 2 - 1)
    assert sr.shape == (2, channels, scale * lr_side, scale * lr_side)
    assert torch.isfinite(sr).all() and sr.abs().max() <= 1


@pytest.mark.parametrize("scale,stages", [(2, 1), (4, 2)])
def test_one_pixel_shuffle_stage_per_factor_two(scale, stages):
    G = SRResNet(3, width=8, blocks=3, scale=scale)
    assert sum(isinstance(m, nn.PixelShuffle) for m in G.modules()) == stages
    assert sum(isinstance(m, nn.PReLU) for m in G.modules()) == 1 + 3 + stages  # head, blocks, upsamplers


def test_srresnet_rejects_other_scales():
    for scale in (1, 3, 6):
        with pytest.raises(ValueError, match="power of two"):
            SRResNet(scale=scale)


def test_global_skip_carries_the_head_features():
    G = SRResNet(3, width=8, blocks=2, scale=2).eval()
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        bn = G.body[-1]
        bn.weight.zero_(), bn.bias.zero_()  # the residual trunk now outputs 0
        assert torch.allclose(G(x), G.tail(G.up(G.head(x))))


def test_srresnet_gradients_reach_all_parameters():
    G = SRResNet(3, width=8, blocks=2, scale=4)
    G(torch.rand(2, 3, 4, 4)).mean().backward()
    assert all(p.grad is not None for p in G.parameters())


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_sr_discriminator_shapes(resolution, channels):
    D = SRDiscriminator(channels, width=4, resolution=resolution)
    logits = D(torch.randn(3, channels, resolution, resolution))
    assert logits.shape == (3,)
    logits.sum().backward()
    assert all(p.grad is not None for p in D.parameters())


def test_sr_discriminator_dense_head_matches_the_paper_at_96px():
    D = SRDiscriminator(3, width=4, resolution=96)
    linears = [m for m in D.modules() if isinstance(m, nn.Linear)]
    # four stride-2 convs: 96 -> 6, 8w channels; Dense(16w) then Dense(1)
    assert linears[0].in_features == 8 * 4 * 6 * 6 and linears[0].out_features == 16 * 4
    assert linears[1].out_features == 1
    strides = [m.stride[0] for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 2]
    with pytest.raises(ValueError, match="96x96"):
        D(torch.zeros(1, 3, 64, 64))



def test_icnr_starts_the_pixel_shuffle_as_nearest_neighbour_upsampling():
    x = torch.rand(1, 8, 5, 6)
    for icnr in (False, True):
        G = SRResNet(3, width=8, blocks=1, scale=4, icnr=icnr)
        for conv, shuffle in ((G.up[0], G.up[1]), (G.up[3], G.up[4])):    # both x2 stages
            y = shuffle(conv(x))                                # 1 x 8 x 10 x 12
            blocks = y.unfold(-2, 2, 2).unfold(-2, 2, 2)        # the 2x2 sub-pixels of each input pixel
            # ICNR: each input pixel becomes a constant 2x2 block, so no checkerboard at initialisation
            assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks)) == icnr
