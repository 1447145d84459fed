"""``generate`` through transformers' GenerationMixin with the hybrid cache: left-padded
batches, greedy, sampling, stopping criteria and beam search."""

from __future__ import annotations

import pytest
import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from edgesmith.core.cache import CACHE_BLOCK, EdgeHybridCache
from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.modeling import EdgeForCausalLM
from edgesmith.core.plugin_manager import get_plugin_manager

OPERATORS = get_plugin_manager().names("operator")
OPTIONS = {"swa": {"window": 4}}
HYBRID = [{"op": "short_conv"}, {"op": "gqa"}, {"op": "swa", "window": 4}, {"op": "short_conv"}]


def model_with(layers, **overrides) -> EdgeForCausalLM:
    torch.manual_seed(0)
    fields = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                  num_key_value_heads=2, layers=layers, eos_token_id=None, pad_token_id=0,
                  initializer_range=0.2)  # weights large enough that a leak shows in the logits
    fields.update(overrides)
    return EdgeForCausalLM(EdgeConfig(**fields)).eval()


def left_pad(prompts: list[list[int]], filler: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pads with an ordinary token (not the pad id, whose zero embedding would hide a leak)."""
    width = max(map(len, prompts))
    ids = torch.tensor([[filler] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.mark.parametrize("op", OPERATORS)
def test_left_padded_batch_generates_what_each_prompt_generates_alone(op):
    layer = {"op": op, **OPTIONS.get(op, {})}
    model = model_with([layer, dict(layer)])
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(3, 64, (n,), generator=g).tolist() for n in (3, 9, 6)]
    ids, mask = left_pad(prompts)
    kwargs = dict(max_new_tokens=8, do_sample=False, return_dict_in_generate=True, output_logits=True)
    batch = model.generate(ids, attention_mask=mask, **kwargs)
    for row, prompt in enumerate(prompts):
        alone = model.generate(torch.tensor([prompt]), **kwargs)
        assert batch.sequences[row, ids.shape[1]:].tolist() == alone.sequences[0, len(prompt):].tolist(), row
        # the logits too: greedy tokens alone can hide a small leak
        for step_batch, step_alone in zip(batch.logits, alone.logits):
            assert (step_batch[row] - step_alone[0]).abs().max() <= 1e-5, f"prompt {row}"


def test_generate_with_cache_equals_argmax_without_cache():
    model = model_with(HYBRID)
    ids = torch.randint(3, 64, (2, 5), generator=torch.Generator().manual_seed(6))
    out = model.generate(ids, max_new_tokens=10, do_sample=False)
    seq = ids
    with torch.no_grad():
        for _ in range(10):  # recompute the whole sequence every step: no state involved
            nxt = model(seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(out, seq)


def test_generate_returns_the_hybrid_cache():
    model = model_with(HYBRID)
    ids = torch.randint(3, 64, (1, 5), generator=torch.Generator().manual_seed(7))
    out = model.generate(ids, max_new_tokens=6, do_sample=False, return_dict_in_generate=True)
    cache = out.cache
    assert isinstance(cache, EdgeHybridCache)
    # prompt + all generated tokens but the last one went through the model
    assert cache.get_seq_length() == 5 + 6 - 1
    assert cache.layers[1].state["length"] == 10  # gqa holds every position, in a preallocated buffer
    assert cache.layers[1].state["key"].shape[2] == CACHE_BLOCK
    assert cache.layers[2].state["key"].shape[2] == 4   # swa stays within its window


def test_sampling_is_seeded_and_varies():
    model = model_with(HYBRID)
    ids = torch.randint(3, 64, (1, 4), generator=torch.Generator().manual_seed(8))

    def sample(seed):
        torch.manual_seed(seed)
        return model.generate(ids, max_new_tokens=12, do_sample=True, temperature=2.0, top_k=0)[0, 4:].tolist()

    samples = [sample(seed) for seed in range(3)]
    assert sample(0) == samples[0]
    assert len(set(map(tuple, samples))) > 1
    greedy = model.generate(ids, max_new_tokens=12, do_sample=False)[0, 4:].tolist()
    assert any(s != greedy for s in samples)


class StopAfterToken(StoppingCriteria):
    def __init__(self, token: int):
        self.token = token

    def __call__(self, input_ids, scores, **kwargs):
        return input_ids[:, -1] == self.token


def test_stopping_criteria_and_eos_stop_generation():
    model = model_with(HYBRID)
    ids = torch.randint(3, 64, (1, 4), generator=torch.Generator().manual_seed(9))
    free = model.generate(ids, max_new_tokens=10, do_sample=False)[0, 4:].tolist()
    stop = free[3]
    first = free.index(stop)
    stopped = model.generate(ids, max_new_tokens=10, do_sample=False,
                             stopping_criteria=StoppingCriteriaList([StopAfterToken(stop)]))
    assert stopped[0, 4:].tolist() == free[:first + 1]
    by_eos = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=stop)
    assert by_eos[0, 4:].tolist() == free[:first + 1]


def test_beam_search_reorders_the_cache():
    model = model_with(HYBRID)
    ids = torch.randint(3, 64, (2, 5), generator=torch.Generator().manual_seed(10))
    cached = model.generate(ids, max_new_tokens=6, num_beams=3, do_sample=False)
    uncached = model.generate(ids, max_new_tokens=6, num_beams=3, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
