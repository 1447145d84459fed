"""Preference pairs as token ids, with EOS only where the side really ended.

TRL's DPOTrainer appends EOS to every chosen and rejected text that does not already end
with it. A loop-branch pair's sides are one step cut from the middle of a trace (or one
token, :mod:`.loop_branches`), and a budget-cut loop never ended: with an EOS appended,
DPO prefers "this step, then stop" and, through the chosen side's NLL term, trains the model
to end after it (in run base8, 13 of 100 sampled reasoning answers after DPO ended without
a final answer, against 1 after SFT). Here each side gets EOS exactly when
``PreferencePair.chosen_ends`` / ``rejected_ends`` say the policy ended there, and the
trainer takes the ids as they are (:func:`dpo_trainer_class`).
"""

from __future__ import annotations

from typing import Any

from .preferences import PreferencePair


def _split(tokenizer: Any, prompt: str, prompt_ids: list[int], side: str) -> tuple[list[int], list[int]]:
    """The prompt's ids and the side's ids, split where prompt and prompt + side part.

    Tokens can merge across the boundary (a prompt cut inside a step ends mid-word): the side
    then starts where the two tokenizations diverge, as the trainer would see the text."""
    from trl.data_utils import common_prefix_length

    full = tokenizer(prompt + side, add_special_tokens=False)["input_ids"]
    at = common_prefix_length(prompt_ids, full)
    return full[:at], full[at:]


def tokenize_pairs(tokenizer: Any, pairs: list[PreferencePair], max_length: int | None = None) -> Any:
    """A ``datasets.Dataset`` of ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` (DPOTrainer's columns).

    A pair whose prompt alone fills ``max_length`` is left out (truncation would keep no
    completion token); a side that is empty after the split is left out with its pair."""
    from datasets import Dataset

    eos = tokenizer.eos_token_id
    rows: dict[str, list] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
    for pair in pairs:
        prompt_ids = tokenizer(pair.prompt, add_special_tokens=False)["input_ids"]
        prompt_c, chosen = _split(tokenizer, pair.prompt, prompt_ids, pair.chosen)
        prompt_r, rejected = _split(tokenizer, pair.prompt, prompt_ids, pair.rejected)
        shared = min(len(prompt_c), len(prompt_r))
        # one prompt for both sides: what either split moved into its side stays on that side
        chosen, rejected = prompt_c[shared:] + chosen, prompt_r[shared:] + rejected
        # a side whose text already holds the EOS (a reference solution, a test's pair) keeps one
        chosen += [eos] if pair.chosen_ends and chosen[-1:] != [eos] else []
        rejected += [eos] if pair.rejected_ends and rejected[-1:] != [eos] else []
        if not chosen or not rejected or (max_length is not None and shared >= max_length):
            continue
        rows["prompt_ids"].append(prompt_c[:shared])
        rows["chosen_ids"].append(chosen)
        rows["rejected_ids"].append(rejected)
    return Dataset.from_dict(rows)


def dpo_trainer_class() -> type:
    """TRL's DPOTrainer taking a dataset from :func:`tokenize_pairs` as it is (no EOS added)."""
    from trl import DPOTrainer

    class TokenizedPairsDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            missing = {"prompt_ids", "chosen_ids", "rejected_ids"} - set(dataset.column_names)
            if missing:
                raise ValueError(f"expected a dataset from tokenize_pairs; missing columns {sorted(missing)}")
            return dataset

    return TokenizedPairsDPOTrainer
