"""conv_grad: the GEMM weight gradient equals autograd's, the split backward is exact (first and second order),
a backward that does not ask for a conv's weights never computes them, and the trainer routes DCGAN's convs."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge import conv_grad as C
from ganforge.api import load_data, make_config
from ganforge.precision import guard_convs
from ganforge.training.trainer import Trainer

# (transposed, in, out, kernel, stride, padding, output_padding, input size)
SHAPES = [(False, 5, 7, 4, 2, 1, 0, 8), (False, 3, 6, 3, 1, 1, 0, 5), (False, 4, 6, 3, 2, 0, 0, 7),
          (False, 4, 6, (3, 5), (1, 2), (1, 2), 0, 9), (True, 5, 7, 4, 2, 1, 0, 4), (True, 6, 3, 3, 2, 1, 1, 5),
          (True, 8, 4, 4, 1, 0, 0, 1), (False, 4, 6, 3, 1, 1, 0, 1)]


def _conv(transposed, cin, cout, k, s, p, op):
    if transposed:
        return nn.ConvTranspose2d(cin, cout, k, s, p, op, bias=True).double()
    return nn.Conv2d(cin, cout, k, s, p, bias=True).double()


def _pairs(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("chunk", [1 << 22, 7])         # 7 elements: one image per chunk, partial sums added
def test_weight_grad_equals_autograds(shape, chunk, monkeypatch):
    monkeypatch.setattr(C, "CHUNK", chunk)
    transposed, cin, cout, k, s, p, op, n = shape
    torch.manual_seed(0)
    m = _conv(transposed, cin, cout, k, s, p, op)
    x = torch.randn(3, cin, n, n + 1, dtype=torch.float64)
    y = m(x)
    g = torch.randn_like(y)
    want, = torch.autograd.grad(y, m.weight, g)
    got = C.weight_grad(x, g, _pairs(k), _pairs(s), _pairs(p), transposed)
    assert got.shape == m.weight.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def _conv_args(m):
    op = m.output_padding if isinstance(m, nn.ConvTranspose2d) else (0, 0)
    return (m.stride, m.padding, tuple(op), isinstance(m, nn.ConvTranspose2d))


@pytest.mark.parametrize("shape", SHAPES)
def test_routed_forward_and_every_gradient_equal_the_native_conv(shape):
    transposed, cin, cout, k, s, p, op, n = shape
    torch.manual_seed(1)
    m = _conv(transposed, cin, cout, k, s, p, op)
    x = torch.randn(2, cin, n, n, dtype=torch.float64, requires_grad=True)
    want = m(x)
    got = C.routed(x, m.weight, m.bias, _conv_args(m), torch.float64)
    torch.testing.assert_close(got, want)
    g = torch.randn_like(want)
    a = torch.autograd.grad(want, (x, m.weight, m.bias), g)
    b = torch.autograd.grad(got, (x, m.weight, m.bias), g)
    for u, v in zip(a, b):
        torch.testing.assert_close(v, u)


def test_second_order_gradient_penalty_sees_the_weights_through_the_input_gradient():
    """R1's d/dw ||d D(x)/dx||^2 flows through the input-gradient node: equal to the native conv's."""
    torch.manual_seed(2)
    m = nn.Conv2d(3, 5, 4, 2, 1).double()
    w2 = torch.randn(5 * 4 * 4, dtype=torch.float64)

    def penalty(conv):
        x = torch.randn(4, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3),
                        requires_grad=True)
        out = (F.leaky_relu(conv(x), 0.2).flatten(1) @ w2).sum()
        gx, = torch.autograd.grad(out, x, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), m.weight)[0]

    native = penalty(m)
    split = penalty(lambda x: C.routed(x, m.weight, m.bias, _conv_args(m), torch.float64))
    assert native.abs().max() > 0
    torch.testing.assert_close(split, native)


def test_a_backward_that_asks_for_other_tensors_never_computes_the_weight_gradient(monkeypatch):
    """The G step's backward(inputs=G's parameters) through D: D's weight-gradient node never runs."""
    calls = []
    real = C.weight_grad
    monkeypatch.setattr(C, "weight_grad", lambda *a: calls.append(1) or real(*a))
    m = nn.Conv2d(4, 6, 4, 2, 1).double()
    z = torch.randn(2, 4, 8, 8, dtype=torch.float64, requires_grad=True)     # stands in for G's parameters
    y = C.routed(z * 2, m.weight, m.bias, _conv_args(m), torch.float64)
    y.square().sum().backward(inputs=[z])
    assert calls == [] and m.weight.grad is None and z.grad is not None
    y = C.routed(z * 2, m.weight, m.bias, _conv_args(m), torch.float64)
    y.square().sum().backward()
    assert calls == [1] and m.weight.grad is not None


def test_padding_only_taps_get_exactly_zero_and_finite_gradients_in_bf16():
    """The case oneDNN's AMX kernel gets wrong (precision.guard_convs): a 3x3 padded conv on a 1x1 map."""
    torch.manual_seed(4)
    m = nn.Conv2d(16, 32, 3, 1, 1)
    C.route_convs(m)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(torch.randn(8, 16, 1, 1))
    assert y.dtype == torch.bfloat16                 # routed (1x1 grid), so no fp32 fallback is needed
    y.float().square().sum().backward()
    g = m.weight.grad
    border = torch.ones(3, 3, dtype=torch.bool)
    border[1, 1] = False
    assert torch.isfinite(g).all() and torch.equal(g[:, :, border], torch.zeros_like(g[:, :, border]))
    assert g[:, :, 1, 1].abs().max() > 0


def test_gemm_wins_rule():
    assert C.gemm_wins((4, 4), (2, 2), 256, 16) and C.gemm_wins((4, 4), (2, 2), 512, 64)
    assert not C.gemm_wins((4, 4), (2, 2), 128, 64)                  # narrow: oneDNN's kernel was faster
    assert not C.gemm_wins((3, 3), (1, 1), 512, 64)                  # 3x3: oneDNN's kernel was faster
    assert C.gemm_wins((4, 4), (1, 1), 100, 1)                       # DCGAN's projection of z (1x1 input)


def test_route_convs_is_idempotent_survives_deepcopy_and_keeps_the_fallbacks():
    net = nn.Sequential(nn.Conv2d(4, 256, 4, 2, 1), nn.Conv2d(256, 8, 3, 1, 1), nn.ConvTranspose2d(8, 4, 4, 2, 1),
                        nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 3, dilation=2))
    assert guard_convs(net) == 4 and C.route_convs(net) == 3 and C.route_convs(net) == 0
    ema = copy.deepcopy(net)
    assert ema[0]._conv_forward.__self__ is ema[0] and ema[0]._native.__self__ is ema[0]
    for m in (net, ema):
        x = torch.randn(2, 4, 8, 8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m[0](x)
            assert y.dtype == torch.bfloat16 and y.grad_fn.name() == "AddBackward0"     # the split backward
            assert m[1](y).grad_fn.name() != "AddBackward0"                             # 3x3: native
            assert m[1](torch.randn(2, 256, 1, 1)).dtype == torch.bfloat16              # 1x1 grid: routed
            with torch.no_grad():
                assert m[0](x).grad_fn is None                                          # sampling: native
        torch.testing.assert_close(m[0](x), F.conv2d(x, m[0].weight, m[0].bias, 2, 1))  # no autocast: native


def test_the_trainer_routes_dcgans_wide_convs_under_cpu_bf16(tmp_path):
    kw = {"resolution": 32, "batch_size": 4, "steps": 2, "log_every": 1, "sample_every": 100,
          "checkpoint_every": 100, "num_samples": 4}
    for precision, routed in (("bf16", True), ("fp32", False)):
        cls, cfg = make_config("dcgan", None, {**kw, "precision": precision})
        data, info = load_data(cfg)
        t = Trainer(cls(cfg, info), data, tmp_path / precision, progress=False)
        convs = [m for n in t.nets.values() for m in n.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        assert all(("_native" in m.__dict__) is routed for m in convs)
        t.train_step()
