"""The copy curriculum: what its sequences hold, and that a tiny model learns to copy from it."""

from __future__ import annotations

import pytest
import torch

from edgesmith.plugins.stages.copy_warmup import IGNORE_INDEX, CopyWarmup, copy_sequences


def test_every_labelled_token_is_predictable_by_copying_and_only_those():
    special = {0, 1, 2}
    warmup = CopyWarmup(sequences=200, seq_len=32)
    data = copy_sequences(50, special, warmup, seed=0)
    ids, labels = data["input_ids"], data["labels"]
    assert ids.shape == labels.shape == (200, 32)
    assert not torch.isin(ids, torch.tensor(sorted(special))).any()
    periods = set()
    for row_ids, row_labels in zip(ids.tolist(), labels.tolist()):
        labelled = [i for i, label in enumerate(row_labels) if label != IGNORE_INDEX]
        assert len(labelled) >= warmup.min_span - 1  # at least one full repeat fits in 32 tokens
        for i in labelled:
            assert row_labels[i] == row_ids[i]
            # induction: the previous token occurred earlier, followed by this very token
            assert any(row_ids[j] == row_ids[i - 1] and row_ids[j + 1] == row_ids[i] for j in range(i - 1))
        # where the first repeat starts relative to the source differs from row to row
        periods.add(labelled[0])
    assert len(periods) > 5  # no fixed period: copying by position would not work
    again = copy_sequences(50, special, warmup, seed=0)
    assert torch.equal(again["input_ids"], ids) and torch.equal(again["labels"], labels)


@pytest.mark.slow
def test_a_tiny_model_learns_to_copy_the_span(one_thread):
    from transformers import AutoModelForCausalLM

    import edgesmith.core.modeling  # noqa: F401
    from edgesmith.core.configuration import EdgeConfig

    config = EdgeConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_attention_heads=2,
                        num_key_value_heads=1, max_position_embeddings=64,
                        layers=[{"op": "short_conv", "conv_length": 3}, {"op": "gqa"}])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    data = copy_sequences(64, {0, 1, 2}, CopyWarmup(sequences=400 * 32, seq_len=24, span=6), seed=0)
    losses = []
    for step in range(400):
        rows = slice(step * 32, (step + 1) * 32)
        loss = model(input_ids=data["input_ids"][rows], labels=data["labels"][rows]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    # chance is ln(61) ~ 4.1 nats per copied token; copying brings it near zero
    assert sum(losses[:10]) / 10 > 3.5
    assert sum(losses[-20:]) / 20 < 1.0, losses[::25]


@pytest.mark.slow
def test_the_warmup_stops_once_the_span_is_copied(tmp_path, one_thread):
    from transformers import AutoModelForCausalLM

    import edgesmith.core.modeling  # noqa: F401
    from edgesmith.core.configuration import EdgeConfig
    from edgesmith.core.stage import StageContext
    from edgesmith.plugins.stages.copy_warmup import run_copy_warmup
    from edgesmith.plugins.world.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["copy the span and copy it again"] * 10, 280)
    config = EdgeConfig(vocab_size=280, hidden_size=64, intermediate_size=128, num_attention_heads=2,
                        num_key_value_heads=1, max_position_embeddings=64,
                        layers=[{"op": "short_conv", "conv_length": 3}, {"op": "gqa"}])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    ctx = StageContext(name="pretrain", config=None, options=None, out_dir=tmp_path, artifacts={}, plugins=None)
    facts = run_copy_warmup(ctx, model, tokenizer, CopyWarmup(sequences=1500 * 32, seq_len=24), steps=1500,
                            batch_size=32, learning_rate=3e-3, seed=0, work_dir=tmp_path / "warmup",
                            target_loss=1.0)
    assert facts["copy_warmup_reached_target"] and facts["copy_warmup_steps"] < 1500
    assert facts["copy_warmup_final_loss"] < 2.0
