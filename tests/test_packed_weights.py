"""bf16 linear layers on weights laid out once for oneDNN: the same bits as F.linear, undone on exit.

Where this PyTorch or CPU has no oneDNN bf16 linear, ``packed_weights`` packs nothing and every
check below still holds (the products simply stay on F.linear).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import edgesmith.core.linear as linear_module
from edgesmith.core.linear import Linear, can_pack_weights, packed_weights

torch.set_num_threads(1)


def _layer(dtype=torch.bfloat16, bias=True):
    torch.manual_seed(0)
    return Linear(64, 96, bias=bias).to(dtype)


@pytest.mark.parametrize("shape", [(2, 64), (7, 64), (3, 5, 64), (1, 1, 64)])
def test_packed_products_are_bit_identical_to_linear(shape):
    layer = _layer()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    expected = F.linear(x, layer.weight, layer.bias)
    with torch.no_grad(), packed_weights(layer, rows=shape[0]) as packed:
        assert packed == (1 if can_pack_weights() else 0)
        got = layer(x)
    assert got.shape == expected.shape and torch.equal(got, expected)


def test_packing_is_undone_on_exit_and_nested_uses_pack_once():
    layer = _layer()
    with torch.no_grad():
        with packed_weights(layer) as outer:
            inner_packed = None
            with packed_weights(layer) as inner:
                inner_packed = layer.packed
            assert inner == 0 and layer.packed is inner_packed  # the inner use left the outer's layout
            assert (layer.packed is not None) == bool(outer)
        assert layer.packed is None
        with pytest.raises(RuntimeError, match="inside"), packed_weights(layer):
            raise RuntimeError("inside")
        assert layer.packed is None


def test_fp32_layers_and_products_with_gradients_stay_on_linear():
    fp32 = _layer(torch.float32)
    with packed_weights(fp32) as packed:
        assert packed == 0 and fp32.packed is None  # fp32 keeps nn.Linear's summation order
    layer = _layer()
    x = torch.randn(4, 64).to(torch.bfloat16)
    with packed_weights(layer):
        y = layer(x)  # gradients enabled: F.linear, so the weight gets its gradient
    y.float().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_bf16_rollouts_are_the_same_with_and_without_packed_weights(monkeypatch, tmp_path):
    from transformers import AutoTokenizer

    from edgesmith.core.configuration import EdgeConfig
    from edgesmith.core.environment import Task
    from edgesmith.core.modeling import EdgeForCausalLM
    from edgesmith.plugins.evaluation.rollout import generate_rollouts
    from tiny_chat_models import train_test_tokenizer

    train_test_tokenizer(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    config = EdgeConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_attention_heads=4,
                        num_key_value_heads=2, layers=[{"op": "short_conv"}, {"op": "gqa"}],
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(3)
    model = EdgeForCausalLM(config).to(torch.bfloat16).eval()
    tasks = [Task(id=f"t{i}", messages=[{"role": "user", "content": "the cat sat " * (i + 1)}], reference="")
             for i in range(4)]

    def rollouts():
        out = generate_rollouts(model, tokenizer, tasks, greedy=True, samples=2, temperature=1.0,
                                max_new_tokens=12, batch_size=6, seed=4)
        return [c.token_ids for c in out.greedy] + [c.token_ids for row in out.sampled for c in row]

    with torch.profiler.profile() as profile:
        packed = rollouts()
    ran_packed = any(event.key == "mkldnn::_linear_pointwise" for event in profile.key_averages())
    assert ran_packed == can_pack_weights()
    monkeypatch.setattr(linear_module, "can_pack_weights", lambda: False)
    assert rollouts() == packed
    assert all(m.packed is None for m in model.modules() if isinstance(m, Linear))
