"""CPU bf16 convolutions whose weight gradient is one matrix product (docs/performance.md, issue 14).

On CPUs with AMX, oneDNN's bf16 backward-weights kernel (brgconv_bwd_w:avx10_1_512_amx in ONEDNN_VERBOSE) is
both slow -- 4-5x the time of the same convolution's forward, where the same arithmetic as one GEMM runs near
the matmul peak -- and wrong in one case: it can leave garbage, often NaN, in the gradient of kernel taps that
only ever meet zero padding (a 3x3 padded conv on a 1x1 map). So under CPU bf16 the trainer lets each plain
nn.Conv2d / nn.ConvTranspose2d (groups 1, dilation 1, zero padding) take `routed` on the shapes where
`gemm_wins`; it splits the conv into two autograd nodes:

- `_Input`: the conv itself (oneDNN forward) whose backward gives only the input gradient, by oneDNN's
  differentiable `convolution_backward` (so gradient penalties' double backward, R1 and WGAN-GP, still see
  how the input gradient depends on the weight);
- `_Params`: the bias (zeros without one), broadcast to the output and added to it, whose backward gives
  the weight gradient as windows(input)^T @ grad_output (im2col and one GEMM, chunked over the batch) and
  the bias gradient. It holds only the parameters as differentiable inputs, so a backward that asks for other
  tensors' gradients -- the G step's `backward(inputs=G's parameters)` through D -- never runs it.

For a transposed conv the roles swap: the weight gradient is windows(grad_output)^T @ input.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .precision import wide

# im2col windows are built this many elements at a time (8 MiB of bf16): a 3x3 conv's windows are 9x its input,
# and building a 33 MB buffer took 10x the time per element of a 17 MB one (docs/performance.md)
CHUNK = 1 << 22


def _windows(x: Tensor, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int], h: int, w: int) -> Tensor:
    """The (n*h*w, kh*kw*c) im2col matrix of NCHW `x` (any strides), first h x w windows, (kh, kw, c) order."""
    nhwc = F.pad(x.permute(0, 2, 3, 1), (0, 0, p[1], p[1], p[0], p[0]))
    win = nhwc.unfold(1, k[0], s[0]).unfold(2, k[1], s[1])[:, :h, :w]      # n, h, w, c, kh, kw
    return win.permute(0, 1, 2, 4, 5, 3).reshape(-1, k[0] * k[1] * x.shape[1])


def weight_grad(x: Tensor, g: Tensor, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
                transposed: bool) -> Tensor:
    """d(sum(g * conv(x, w)))/dw for a conv with kernel k, stride s, zero padding p (groups 1, dilation 1);
    for a transposed conv (x its input, g the gradient of its output) the same with the roles of x and g
    swapped. Returns the weight's shape: (out, in, kh, kw), or (in, out, kh, kw) when transposed."""
    a, b = (x, g) if transposed else (g, x)        # a: one row per window position, b: the windowed tensor
    n, h, w = a.shape[0], a.shape[2], a.shape[3]
    rows = a.permute(0, 2, 3, 1).reshape(n, h * w, a.shape[1])
    per = max(1, CHUNK // max(1, h * w * k[0] * k[1] * b.shape[1]))
    parts = [rows[i:i + per].reshape(-1, a.shape[1]).t() @ _windows(b[i:i + per], k, s, p, h, w)
             for i in range(0, n, per)]
    total = parts[0] if len(parts) == 1 else sum(wide(q) for q in parts).to(a.dtype)   # partial sums in fp32
    out = total.view(a.shape[1], k[0], k[1], b.shape[1])
    return out.permute(0, 3, 1, 2)                 # (a's channels, b's channels, kh, kw), channels_last strides


class _Input(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, conv):
        ctx.conv = conv
        ctx.save_for_backward(x, weight)
        return _native(x, weight, None, conv)

    @staticmethod
    def backward(ctx, g):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        x, weight = ctx.saved_tensors
        stride, padding, out_pad, transposed = ctx.conv
        gx = torch.ops.aten.convolution_backward(g, x, weight, None, stride, padding, (1, 1), transposed,
                                                 out_pad, 1, (True, False, False))[0]
        return gx, None, None


class _Params(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, shape, weight, bias, conv):
        ctx.conv, ctx.kernel = conv, tuple(weight.shape[2:])
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x)
        return (bias.view(1, -1, 1, 1) if ctx.has_bias else weight.new_zeros(())).expand(shape)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        stride, padding, _, transposed = ctx.conv
        gw = weight_grad(x, g, ctx.kernel, stride, padding, transposed) if ctx.needs_input_grad[2] else None
        gb = g.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return None, None, gw, gb, None


def _native(x: Tensor, weight: Tensor, bias: Tensor | None, conv: tuple) -> Tensor:
    stride, padding, out_pad, transposed = conv
    if transposed:
        return F.conv_transpose2d(x, weight, bias, stride, padding, out_pad)
    return F.conv2d(x, weight, bias, stride, padding)


def routed(x: Tensor, weight: Tensor, bias: Tensor | None, conv: tuple, dtype: torch.dtype) -> Tensor:
    """conv(x, weight, bias) in `dtype` with the split backward above (conv = stride, padding,
    output_padding, transposed); the casts to `dtype` are ordinary autograd ops."""
    with torch.autocast("cpu", enabled=False):
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
        y = _Input.apply(x, weight, conv) if x.requires_grad else _native(x, weight.detach(), None, conv)
        if weight.requires_grad or (bias is not None and bias.requires_grad):
            y = y + _Params.apply(x.detach(), y.shape, weight, bias, conv)
        elif bias is not None:
            y = y + bias.view(1, -1, 1, 1)
        return y


def eligible(m: nn.Module) -> bool:
    """A plain 2-D conv the route computes exactly: groups 1, dilation 1, symmetric zero padding."""
    if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) or m.padding_mode != "zeros":
        return False
    return m.groups == 1 and m.dilation == (1, 1) and isinstance(m.padding, tuple)


def gemm_wins(kernel: tuple, stride: tuple, rows: int, grid: int) -> bool:
    """Where the GEMM beats oneDNN's bf16 weight gradient, as measured on AMX and AVX512-BF16 CPUs
    (docs/performance.md): a GEMM with one row per pixel of a 1x1 grid (DCGAN's projection of z), and the
    4x4 stride-2 convs (DCGAN's, pix2pix's) with >= 256 GEMM rows (output channels of a conv, input channels
    of a transposed conv), where im2col's memory traffic is amortised over enough arithmetic. oneDNN's
    kernels for 3x3 and 9x9 convs, and for narrower 4x4 ones, were as fast or faster: those stay native."""
    return grid == 1 or (kernel == (4, 4) and stride == (2, 2) and rows >= 256)


def _active(x: Tensor) -> bool:
    return x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and torch.is_grad_enabled()


def _conv_forward(self: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    if _active(x):
        conv = (self.stride, self.padding, (0, 0), False)
        h, w = ((n + 2 * p - k) // s + 1 for n, k, s, p in zip(x.shape[-2:], self.kernel_size, self.stride,
                                                               self.padding))
        if gemm_wins(self.kernel_size, self.stride, self.out_channels, h * w):
            return routed(x, weight, bias, conv, torch.get_autocast_dtype("cpu"))
    return self._native(x, weight, bias)


def _transposed_forward(self: nn.ConvTranspose2d, x: Tensor, output_size=None) -> Tensor:
    if _active(x) and gemm_wins(self.kernel_size, self.stride, self.in_channels, x.shape[-2] * x.shape[-1]):
        pad = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation)
        conv = (self.stride, self.padding, tuple(pad), True)
        return routed(x, self.weight, self.bias, conv, torch.get_autocast_dtype("cpu"))
    return self._native(x, output_size)


def route_convs(net: nn.Module) -> int:
    """Give every eligible conv of `net` the split backward under CPU autocast where gemm_wins (elsewhere it
    computes as before, precision.guard_convs' fp32 fallback included); returns how many convs can route.
    Idempotent; survives deepcopy (EMA)."""
    count = 0
    for m in net.modules():
        if eligible(m) and "_native" not in m.__dict__:
            if isinstance(m, nn.ConvTranspose2d):
                m._native, m.forward = m.forward, types.MethodType(_transposed_forward, m)
            else:
                m._native, m._conv_forward = m._conv_forward, types.MethodType(_conv_forward, m)
            count += 1
    return count
