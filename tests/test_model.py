"""The 1st-place network: size, padding invariance, masked BatchNorm, gradients, compile, autocast."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from asl_cli.config import ModelConfig
from asl_cli.model import KERAS_REFERENCE_PARAMS, ASLNet, build_model, keras_parameter_count
from asl_cli.model.blocks import MaskedBatchNorm

NUM_FEATURES = 708


def lengths_mask(lengths: list[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]


def small_model(num_classes: int = 12, **kw) -> ASLNet:
    args = dict(dim=32, blocks=1, num_heads=4)
    args.update(kw)
    return ASLNet(num_classes, **args)


def expected_keras_count(dim: int, blocks: int, classes: int, features: int = NUM_FEATURES, kernel: int = 17,
                         expand: int = 2) -> int:
    """The winner's layer list counted by hand (Keras BN: 4 numbers per channel)."""
    inner = dim * expand
    stem = features * dim + 4 * dim
    conv_block = (dim * inner + inner) + kernel * inner + 4 * inner + 5 + (inner * dim + dim)
    transformer = 4 * dim + 3 * dim * dim + dim * dim + 4 * dim + dim * inner + inner * dim
    head = (dim * 2 * dim + 2 * dim) + (2 * dim * classes + classes)
    return stem + blocks * (3 * conv_block + transformer) + head


def test_parameter_count_matches_the_winners_keras_summary():
    model = build_model(ModelConfig(dim=192, blocks=2), num_classes=250)
    count = keras_parameter_count(model)
    assert count == expected_keras_count(192, 2, 250)
    # Keras adds one int64 step counter (LateDropout) that this model does not need.
    assert count + 1 == KERAS_REFERENCE_PARAMS
    assert abs(count - KERAS_REFERENCE_PARAMS) / KERAS_REFERENCE_PARAMS < 0.01


def test_parameter_count_follows_the_config():
    model = build_model(ModelConfig(dim=48, blocks=3, num_heads=4), num_classes=17, num_features=100)
    assert keras_parameter_count(model) == expected_keras_count(48, 3, 17, features=100)
    assert sum(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules()) == 0
    assert len(model.body) == 3 * 4


def _with_trained_statistics(model: ASLNet) -> ASLNet:
    """Move BN running stats away from (0, 1) so eval mode really uses them."""
    torch.manual_seed(5)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(6, 20, NUM_FEATURES) * 2 + 0.5
            model(x, lengths_mask([20, 15, 9, 4, 2, 1], 20))
    return model.eval()


def test_eval_output_does_not_depend_on_padding_or_batch_mates():
    torch.manual_seed(0)
    model = _with_trained_statistics(small_model(blocks=2))
    lengths = [7, 30, 1, 18]
    length = 32
    features = torch.randn(len(lengths), length, NUM_FEATURES)
    mask = lengths_mask(lengths, length)
    # Whatever sits in the padding (even NaN) must not matter.
    features[~mask] = float("nan")
    features[0, 7:20] = 1e4
    with torch.no_grad():
        batched = model(features, mask)
        for i, n in enumerate(lengths):
            alone = model(features[i:i + 1, :n], torch.ones(1, n, dtype=torch.bool))
            torch.testing.assert_close(batched[i:i + 1], alone, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(batched).all()


def test_masked_batchnorm_ignores_padding_in_train_mode():
    torch.manual_seed(1)
    channels = 8
    ours = MaskedBatchNorm(channels)
    reference = torch.nn.BatchNorm1d(channels, momentum=0.05, eps=1e-3)
    lengths = [5, 12, 1]
    x = torch.randn(3, 12, channels) * 3 + 1
    mask = lengths_mask(lengths, 12)
    x_padded = torch.where(mask[..., None], x, torch.full_like(x, 1e3))
    valid = x[mask]  # (N, C): the frames an unpadded batch would hold
    out = ours(x_padded, mask)
    expected = reference(valid)
    torch.testing.assert_close(out[mask], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_mean, reference.running_mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.running_var, reference.running_var, atol=1e-6, rtol=1e-6)
    ours.eval(), reference.eval()
    torch.testing.assert_close(ours(x, mask)[mask], reference(valid), atol=1e-5, rtol=1e-5)


def test_masked_batchnorm_learns_no_statistics_from_a_single_valid_frame():
    """One valid frame has no variance: running_var must not move towards 0 (nor running_mean
    towards that frame); two frames update as before."""
    torch.manual_seed(3)
    bn = MaskedBatchNorm(4)
    bn.running_mean.fill_(0.5)
    bn.running_var.fill_(2.0)
    x = torch.randn(2, 6, 4)
    out = bn(x, lengths_mask([1, 0], 6))
    assert torch.isfinite(out).all()
    assert torch.equal(bn.running_mean, torch.full((4,), 0.5)) and torch.equal(bn.running_var, torch.full((4,), 2.0))
    bn(x, lengths_mask([2, 0], 6))
    assert not torch.equal(bn.running_mean, torch.full((4,), 0.5))
    assert not torch.equal(bn.running_var, torch.full((4,), 2.0))


def test_train_mode_model_ignores_extra_padding():
    """Same batch padded to two lengths: same logits and same running statistics (no dropout)."""
    torch.manual_seed(2)
    a, b = small_model(drop_rate=0.0), small_model(drop_rate=0.0)
    b.load_state_dict(a.state_dict())
    lengths = [9, 3, 14]
    short = torch.randn(3, 14, NUM_FEATURES)
    long = torch.cat([short, torch.randn(3, 11, NUM_FEATURES) * 50], dim=1)
    out_short = a.train()(short, lengths_mask(lengths, 14))
    out_long = b.train()(long, lengths_mask(lengths, 25))
    torch.testing.assert_close(out_short, out_long, atol=1e-5, rtol=1e-5)
    for (name, buf_a), (_, buf_b) in zip(a.named_buffers(), b.named_buffers()):
        torch.testing.assert_close(buf_a, buf_b, atol=1e-6, rtol=1e-6, msg=name)


def test_every_parameter_gets_a_gradient_and_initial_loss_is_uniform():
    torch.manual_seed(3)
    num_classes = 250
    model = build_model(ModelConfig(), num_classes=num_classes).train()  # late dropout off, as at epoch 0
    lengths = torch.randint(1, 25, (32,)).tolist()
    features = torch.randn(len(lengths), 24, NUM_FEATURES)
    labels = torch.randint(0, num_classes, (len(lengths),))
    loss = F.cross_entropy(model(features, lengths_mask(lengths, 24)), labels)
    assert abs(loss.item() - math.log(num_classes)) < 0.3
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_late_dropout_switch():
    torch.manual_seed(4)
    model = small_model(drop_rate=0.0).train()
    x, mask = torch.randn(4, 10, NUM_FEATURES), lengths_mask([10, 6, 3, 1], 10)
    state = model.state_dict()
    off = model(x, mask)
    model.load_state_dict(state)
    assert torch.equal(off, model(x, mask)), "inactive late dropout must be the identity"
    model.load_state_dict(state)
    model.set_late_dropout(True)
    assert not torch.allclose(off, model(x, mask))
    model.eval()
    assert torch.equal(model(x, mask), model(x, mask)), "dropout never acts in eval mode"


def test_no_mask_means_all_frames_valid_and_an_empty_row_stays_finite():
    torch.manual_seed(6)
    model = _with_trained_statistics(small_model())
    x = torch.randn(2, 8, NUM_FEATURES)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x, torch.ones(2, 8, dtype=torch.bool)))
        out = model(x, lengths_mask([8, 0], 8))
    assert torch.isfinite(out).all()


def test_torch_compile_traces_one_graph_and_matches_eager():
    torch.manual_seed(7)
    model = small_model()
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # fullgraph: a graph break raises
    x, mask = torch.randn(3, 12, NUM_FEATURES), lengths_mask([12, 5, 1], 12)
    torch.manual_seed(8)
    eager = model(x, mask)
    torch.manual_seed(8)
    traced = compiled(x, mask)
    torch.testing.assert_close(traced, eager)
    traced.sum().backward()
    model.set_late_dropout(True)
    model.eval()
    torch.testing.assert_close(compiled(x, mask), model(x, mask))


def test_bf16_autocast_on_cpu():
    torch.manual_seed(9)
    model = _with_trained_statistics(small_model())
    x, mask = torch.randn(3, 16, NUM_FEATURES), lengths_mask([16, 8, 2], 16)
    reference = model(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, mask)
    assert torch.isfinite(low).all()
    assert (low.float() - reference).abs().max() < 0.1 * reference.abs().max() + 0.05
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x, mask).float(), torch.tensor([0, 1, 2]))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # Running statistics stay float32 under autocast.
    assert all(b.dtype == torch.float32 for b in model.buffers())


def test_attention_uses_the_full_dim_scale():
    model = small_model(dim=32, num_heads=4)
    attn = model.body[3].attn
    assert attn.scale == pytest.approx(32 ** -0.5)
    assert attn.qkv.bias is None and attn.proj.bias is None


def test_depthwise_convolution_is_causal():
    """With ECA's gate held constant, a Conv1DBlock's output at frame t depends on frames <= t only."""
    from asl_cli.model.blocks import Conv1DBlock

    torch.manual_seed(10)
    block = Conv1DBlock(16, kernel_size=5, drop_rate=0.0).eval()
    with torch.no_grad():
        block.eca.conv.weight.zero_()  # gate = sigmoid(0) everywhere: no global pooling path left
        x = torch.randn(1, 12, 16)
        mask = torch.ones(1, 12, dtype=torch.bool)
        changed = x.clone()
        changed[0, 6] += 1.0
        before, after = block(x, mask), block(changed, mask)
    assert torch.equal(before[0, :6], after[0, :6])
    assert not torch.allclose(before[0, 6], after[0, 6])
    assert not torch.allclose(before[0, 7:11], after[0, 7:11])  # the kernel reaches 4 frames ahead


def test_the_network_can_fit_a_tiny_batch_with_the_winners_optimizer():
    """Train mode with all its dropout (drop-path, attention dropout): 60 RAdam+Lookahead updates
    fit 8 sequences of random frames, judged in eval mode with the learned running statistics."""
    from asl_cli.config import OptimConfig
    from asl_cli.engine.optim import build_optimizer

    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=32, blocks=1), num_classes=4)
    optimizer = build_optimizer(model, OptimConfig(lr=3e-3))
    lengths = torch.randint(1, 13, (8,)).tolist()
    features, mask = torch.randn(8, 12, NUM_FEATURES), lengths_mask(lengths, 12)
    labels = torch.arange(8) % 4
    for _ in range(60):
        F.cross_entropy(model(features, mask), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        assert (model(features, mask).argmax(1) == labels).all()


def test_build_model_rejects_impossible_shapes():
    from asl_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="num_heads"):
        build_model(ModelConfig(dim=30, num_heads=4), num_classes=5)
    with pytest.raises(ConfigError, match="classes"):
        build_model(ModelConfig(dim=32), num_classes=1)
