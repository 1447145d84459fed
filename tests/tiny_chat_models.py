"""Tiny transformers causal LMs with edgesmith's tokenizer, built by the tests themselves.

``random_model``: a randomly initialised Llama (whatever it generates). ``constant_model``:
a Llama whose every position sees the same hidden state (all embeddings equal, so
attention mixes identical values) and whose head favours one token: greedy and sampled
decoding emit that token forever (a guaranteed doom loop) or, with the eos id, stop at once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def train_test_tokenizer(save_dir: Path, vocab_size: int = 400):
    from edgesmith.plugins.world.corpus import build_corpus
    from edgesmith.plugins.world.tokenizer import train_tokenizer

    return train_tokenizer(build_corpus(60, seed=0), vocab_size=vocab_size, save_dir=str(save_dir))


def _config(tokenizer) -> LlamaConfig:
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)


def random_model(save_dir: Path, tokenizer, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_config(tokenizer))
    model.save_pretrained(save_dir)
    tokenizer.save_pretrained(save_dir)
    return model


def constant_model(save_dir: Path | None, tokenizer, token_id: int, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_config(tokenizer))
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:] = torch.randn(emb.shape[1])  # (row 0, the padding row, is all zeros)
        hidden = model.model(input_ids=torch.tensor([[1, 2, 3]])).last_hidden_state[0, -1]
        model.lm_head.weight.zero_()
        model.lm_head.weight[token_id] = 50 * hidden / hidden.norm()
    if save_dir is not None:
        model.save_pretrained(save_dir)
        tokenizer.save_pretrained(save_dir)
    return model
