"""Building blocks of the 1st-place network, written for (B, L, C) tensors with a (B, L) bool mask.

Every block takes `mask` (True = valid frame; padding sits at the end of each row) and guarantees
that padded frames never change the values at valid frames:

- statistics (BatchNorm in train mode, ECA's channel pooling) are taken over valid frames only;
- the depthwise convolution is causal (left padding), so a frame only sees itself and earlier ones;
- attention ignores padded keys;
- padded positions are set to exactly 0 before the convolution and at every block output, so a
  non-finite value at a padded frame (e.g. an fp16 overflow there) cannot reach valid frames
  through `0 * inf` in a matrix product.

No Python branch depends on tensor values, so `torch.compile(fullgraph=True)` traces each block
in one graph, and every op here has a standard ONNX equivalent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x` (B, L, C) with padded frames set to 0 (`where`, not multiply, so NaN/inf there are cleared)."""
    return torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames of each row: (B, L, C) -> (B, C). A row with no valid frame gives 0."""
    count = mask.sum(dim=1, keepdim=True).clamp_min(1).to(x.dtype)
    return zero_padding(x, mask).sum(dim=1) / count


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop the whole residual branch of a sample with probability `p` (Keras Dropout, noise_shape=(None,1,1))."""
    if not training or p <= 0.0:
        return x
    keep = 1.0 - p
    gate = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * gate / keep


class MaskedBatchNorm(nn.Module):
    """BatchNorm over the last (channel) axis whose train-mode statistics use valid frames only.

    Train mode normalises with the mean and biased variance of the valid frames of the batch and
    moves the running statistics towards them (running_var gets the unbiased variance, as
    `nn.BatchNorm1d` does); eval mode uses the running statistics. Keras momentum 0.95 is PyTorch
    momentum 0.05; eps 1e-3 is the Keras default the winner used. Statistics are computed in
    float32 whatever the input dtype (autocast), and the output keeps the input dtype.
    """

    def __init__(self, num_features: int, momentum: float = 0.05, eps: float = 1e-3):
        super().__init__()
        self.num_features = num_features
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        if self.training:
            valid = mask.unsqueeze(-1)
            count = valid.sum().clamp_min(1).float()
            zero = torch.zeros((), dtype=xf.dtype, device=xf.device)
            mean = torch.where(valid, xf, zero).sum(dim=(0, 1)) / count
            centred = torch.where(valid, xf - mean, zero)
            var = centred.square().sum(dim=(0, 1)) / count
            self.update_running_stats(mean, var, count)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        return ((xf - mean) * scale + self.bias).to(x.dtype)

    @torch.no_grad()
    def update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        """Move the running statistics towards a batch's (`var` biased, over `count` valid frames).

        A batch with fewer than 2 valid frames has no variance to learn from: it leaves them alone
        (its own normalisation still uses its statistics) instead of pulling running_var towards 0.
        The weight is a tensor, so deciding that needs no host sync.
        """
        enough = count > 1
        weight = torch.where(enough, self.momentum, 0.0).to(self.running_mean.dtype)
        unbiased = var * (count / (count - 1).clamp_min(1))
        self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), weight)
        self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), weight)

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, eps={self.eps}"


class ECA(nn.Module):
    """Efficient channel attention: masked mean over frames -> Conv1d(1->1, k, "same") across
    channels -> sigmoid gate."""

    def __init__(self, kernel_size: int = 5):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(x, mask).unsqueeze(1)  # (B, 1, C): channels are the conv's length axis
        gate = torch.sigmoid(self.conv(pooled))  # (B, 1, C)
        return x * gate


class Conv1DBlock(nn.Module):
    """Linear(dim->expand*dim) + swish -> causal depthwise conv -> masked BN -> ECA -> Linear(->dim)
    -> drop-path -> residual add."""

    def __init__(self, dim: int, kernel_size: int = 17, drop_rate: float = 0.2, expand: int = 2):
        super().__init__()
        inner = dim * expand
        self.drop_rate = drop_rate
        self.causal_pad = kernel_size - 1
        self.expand = nn.Linear(dim, inner, bias=True)
        self.dwconv = nn.Conv1d(inner, inner, kernel_size, groups=inner, bias=False)
        self.bn = MaskedBatchNorm(inner)
        self.eca = ECA(5)
        self.project = nn.Linear(inner, dim, bias=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = zero_padding(F.silu(self.expand(x)), mask)
        h = F.pad(h.transpose(1, 2), (self.causal_pad, 0))  # left padding only: frame t sees t-16..t
        h = self.dwconv(h).transpose(1, 2)
        h = self.eca(self.bn(h, mask), mask)
        h = self.project(h)
        return zero_padding(x + drop_path(h, self.drop_rate, self.training), mask)


class MultiHeadSelfAttention(nn.Module):
    """The winner's MHSA: qkv/out projections without bias, scale = dim**-0.5 (full dim), padded keys masked.

    The qkv output is laid out per head as [q_h | k_h | v_h] (Keras reshape (L, heads, 3*dim/heads)
    then split), so Keras weights map onto `qkv.weight` without reordering.
    """

    def __init__(self, dim: int, num_heads: int = 4, attn_drop: float = 0.2):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = dim ** -0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """`key_mask` (B, L) bool: keys that may be attended to (at least one True per row)."""
        b, length, _ = x.shape
        qkv = self.qkv(x).reshape(b, length, self.num_heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.head_dim, dim=-1)  # each (B, H, L, head_dim)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask[:, None, None, :],
            dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, length, self.dim))


class TransformerBlock(nn.Module):
    """Pre-norm block: masked BN -> MHSA -> drop-path -> add; masked BN -> MLP(swish) -> drop-path -> add."""

    def __init__(self, dim: int, num_heads: int = 4, expand: int = 2, drop_rate: float = 0.2,
                 attn_drop: float = 0.2):
        super().__init__()
        self.drop_rate = drop_rate
        self.norm1 = MaskedBatchNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, num_heads, attn_drop)
        self.norm2 = MaskedBatchNorm(dim)
        self.fc1 = nn.Linear(dim, dim * expand, bias=False)
        self.fc2 = nn.Linear(dim * expand, dim, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x, mask), key_mask), self.drop_rate, self.training)
        h = self.fc2(F.silu(self.fc1(self.norm2(x, mask))))
        return zero_padding(x + drop_path(h, self.drop_rate, self.training), mask)
