"""The 1st-place network (hoyso48): a stem, [3 x Conv1DBlock -> TransformerBlock] x blocks, a pooled head.

`model(features (B, L, 708) float, mask (B, L) bool) -> logits (B, num_classes)`.
Padding never changes a valid frame's value or the pooled vector (see `blocks.py` and docs/model.md),
so the logits of a sequence do not depend on what it was batched with (eval mode).
"""

from __future__ import annotations

import torch
from torch import nn

from asl_cli.data.landmarks import NUM_FEATURES
from asl_cli.errors import ConfigError
from asl_cli.model.blocks import (ECA, Conv1DBlock, MaskedBatchNorm, MultiHeadSelfAttention,
                                  TransformerBlock, masked_mean, zero_padding)

# Keras `model.summary()` of the winner's dim-192 model (2 block groups, 250 classes). It counts
# BatchNorm's moving mean/variance and LateDropout's int64 step counter as (non-trainable) weights.
KERAS_REFERENCE_PARAMS = 1_836_569


class ASLNet(nn.Module):
    def __init__(self, num_classes: int, num_features: int = NUM_FEATURES, dim: int = 192, blocks: int = 2,
                 kernel_size: int = 17, num_heads: int = 4, expand: int = 2, drop_rate: float = 0.2,
                 late_dropout: float = 0.8):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = num_features
        self.dim = dim
        self.stem = nn.Linear(num_features, dim, bias=False)
        self.stem_bn = MaskedBatchNorm(dim)
        layers: list[nn.Module] = []
        for _ in range(blocks):
            layers += [Conv1DBlock(dim, kernel_size, drop_rate, expand) for _ in range(3)]
            layers.append(TransformerBlock(dim, num_heads, expand, drop_rate, attn_drop=drop_rate))
        self.body = nn.ModuleList(layers)
        self.top = nn.Linear(dim, 2 * dim, bias=True)  # Keras Dense default: with bias, no activation
        self.late_dropout = nn.Dropout(late_dropout)
        self.classifier = nn.Linear(2 * dim, num_classes)
        # The switch is a (non-persistent) tensor, not a Python bool: torch.compile guards on Python
        # attributes, so flipping a bool at late_dropout_start would recompile every length bucket's
        # graph again; a buffer is a graph input. `_late_on` mirrors it for reading without a sync.
        self.register_buffer("late_dropout_gate", torch.zeros(()), persistent=False)
        self._late_on = False
        self.reset_parameters()

    def set_late_dropout(self, active: bool) -> None:
        """Enable the head's dropout (the trainer does so from `model.late_dropout_start`).

        It only acts in train mode. In train mode the head's dropout mask is drawn on every forward
        pass and applied only while the switch is on (one graph for both states under torch.compile).
        """
        active = bool(active)
        if active != self._late_on:  # a device write only when it changes
            self.late_dropout_gate.fill_(1.0 if active else 0.0)
            self._late_on = active

    @property
    def late_dropout_active(self) -> bool:
        return self._late_on

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Keras defaults, as in the winner's model: Glorot-uniform kernels, zero biases, BN gamma 1 / beta 0.

        One deliberate change: the classifier starts small (normal, std 0.02, timm's head init). With
        Glorot there the logits start with std ~0.7 and the loss ~0.27 nats above ln(num_classes);
        with it the first loss is ln(num_classes) within ~0.05 and every layer still gets a gradient.
        """
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                # torch's fan computation for a depthwise (C, 1, k) kernel gives the same bound as Keras's.
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, MaskedBatchNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
        nn.init.normal_(self.classifier.weight, std=0.02)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        mask = mask.to(torch.bool)
        # A row without any valid frame (never produced by the loader) may attend everywhere rather
        # than produce NaN from an all-masked softmax; its pooled vector is 0 anyway.
        key_mask = mask | ~mask.any(dim=1, keepdim=True)
        x = zero_padding(features, mask)
        x = zero_padding(self.stem_bn(self.stem(x), mask), mask)
        for layer in self.body:
            if isinstance(layer, TransformerBlock):
                x = layer(x, mask, key_mask)
            else:
                x = layer(x, mask)
        pooled = masked_mean(self.top(x), mask)
        if self.training and self.late_dropout.p > 0:
            pooled = torch.where(self.late_dropout_gate > 0, self.late_dropout(pooled), pooled)
        return self.classifier(pooled)


def build_model(model_cfg, num_classes: int, num_features: int = NUM_FEATURES) -> ASLNet:
    """The network described by `model_cfg` (asl_cli.config.ModelConfig)."""
    if num_classes < 2:
        raise ConfigError(f"the model needs at least 2 classes, got {num_classes}")
    if model_cfg.dim % model_cfg.num_heads:
        raise ConfigError(f"model.dim ({model_cfg.dim}) must be divisible by model.num_heads ({model_cfg.num_heads})")
    return ASLNet(num_classes=num_classes, num_features=num_features, dim=model_cfg.dim,
                  blocks=model_cfg.blocks, kernel_size=model_cfg.kernel_size, num_heads=model_cfg.num_heads,
                  expand=model_cfg.expand, drop_rate=model_cfg.drop_rate, late_dropout=model_cfg.late_dropout)


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters (PyTorch's usual count)."""
    return sum(p.numel() for p in model.parameters())


def keras_parameter_count(model: nn.Module) -> int:
    """Parameters counted as Keras's `model.summary()` does: plus BatchNorm's running mean and variance.

    (Keras also counts LateDropout's one-element step counter, which this model does not need: the
    trainer switches late dropout on. The winner's 1,836,569 is therefore this count + 1 at dim 192.)
    """
    stats = sum(buf.numel() for name, buf in model.named_buffers()
                if name.endswith(("running_mean", "running_var")))
    return count_parameters(model) + stats


__all__ = ["ASLNet", "build_model", "count_parameters", "keras_parameter_count", "KERAS_REFERENCE_PARAMS",
           "Conv1DBlock", "TransformerBlock", "MultiHeadSelfAttention", "MaskedBatchNorm", "ECA"]
