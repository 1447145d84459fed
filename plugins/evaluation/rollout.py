"""Rollouts: batched generation of completions for environment tasks (shared by eval and DPO).

Prompts are rendered with the tokenizer's chat template (``add_generation_prompt=True``,
``tools=task.tools``) and generated in left-padded batches with transformers' ``generate``.
Each completion records whether it *finished* (the model emitted an end-of-sequence token)
or ran into the token budget (or was cut by a loop guard): that bit is what the doom-loop
measurement needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from edgesmith.core.environment import Task
from edgesmith.core.errors import EdgesmithError


class ChatTemplateMissing(EdgesmithError, ValueError):
    """The tokenizer has no chat template, so prompts cannot be rendered."""


@dataclass
class Completion:
    """One generated completion.

    ``text`` is the decoded completion without padding and without the final end-of-sequence
    token (other special tokens, e.g. tool-call markers, are kept); ``token_ids`` are the
    generated ids without padding, ending with the end-of-sequence id when ``finished``.
    ``seconds`` is this completion's share of its batch's wall time (by token count), so
    summing ``n_tokens`` and ``seconds`` over completions gives the true throughput.
    ``stop_reason`` is ``eos``, ``budget`` or the loop guard's reason.
    """

    text: str
    token_ids: list[int]
    finished: bool
    n_tokens: int
    seconds: float
    stop_reason: str = "budget"
    metadata: dict[str, Any] = field(default_factory=dict)


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a generation: the generation config's and the tokenizer's."""
    ids: list[int] = []
    for source in (getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                   getattr(model.config, "eos_token_id", None), tokenizer.eos_token_id):
        if source is None:
            continue
        for i in [source] if isinstance(source, int) else list(source):
            if i not in ids:
                ids.append(int(i))
    if not ids:
        raise EdgesmithError("the model and tokenizer define no end-of-sequence token "
                             "(tokenizer.eos_token / generation_config.eos_token_id): a finished "
                             "generation could not be told from one that hit the budget")
    return ids


def render_prompts(tokenizer: Any, tasks: Sequence[Task]) -> list[str]:
    """The chat-template text of each task's prompt, ready for the assistant's turn."""
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateMissing(
            f"the tokenizer ({getattr(tokenizer, 'name_or_path', '?')}) has no chat template; accepted: a "
            "model directory whose tokenizer_config.json has 'chat_template' (or a chat_template.jinja "
            "file), e.g. one trained with edgesmith.plugins.world.tokenizer.train_tokenizer")
    return [tokenizer.apply_chat_template(t.messages, tools=t.tools, add_generation_prompt=True, tokenize=False)
            for t in tasks]


def generate_completions(model: Any, tokenizer: Any, tasks: Sequence[Task], n_samples: int = 1,
                         temperature: float = 0.0, max_new_tokens: int = 256, batch_size: int = 8,
                         top_p: float = 1.0, seed: int | None = 0, loop_guard: bool | dict[str, Any] = False,
                         progress: Callable[[int], None] | None = None) -> list[list[Completion]]:
    """``n_samples`` completions per task, in task order.

    ``temperature == 0`` is greedy decoding (the one greedy completion is repeated
    ``n_samples`` times rather than recomputed). ``loop_guard`` (True, or LoopGuard options)
    stops looping sequences early: such a completion has ``finished=False`` and the guard's
    reason as ``stop_reason``. ``progress(k)`` is called after each batch with the number of
    completions it produced.
    """
    if n_samples < 1 or max_new_tokens < 1 or batch_size < 1 or temperature < 0:
        raise ValueError("generate_completions needs n_samples >= 1, max_new_tokens >= 1, batch_size >= 1, "
                         f"temperature >= 0; got {n_samples}, {max_new_tokens}, {batch_size}, {temperature}")
    prompts = render_prompts(tokenizer, tasks)
    greedy = temperature == 0
    copies = 1 if greedy else n_samples
    jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(copies)]
    stops = eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    results: list[list[Completion]] = [[] for _ in tasks]
    if seed is not None:
        torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start:start + batch_size]
            encoded = tokenizer([p for _, p in batch], return_tensors="pt", padding=True,
                                padding_side="left", add_special_tokens=False)
            if tokenizer.pad_token_id is None:  # no pad token: pad with eos (masked anyway)
                encoded["input_ids"][encoded["attention_mask"] == 0] = pad_id
            input_ids = encoded["input_ids"].to(device)
            attention_mask = encoded["attention_mask"].to(device)
            prompt_length = input_ids.shape[1]
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=pad_id)
            if greedy:
                kwargs.update(do_sample=False)
            else:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            guard = None
            if loop_guard:
                from transformers import StoppingCriteriaList

                from edgesmith.plugins.loops.guard import LoopGuard

                options = loop_guard if isinstance(loop_guard, dict) else {}
                guard = LoopGuard(prompt_length, eos_token_id=stops, **options)
                kwargs["stopping_criteria"] = StoppingCriteriaList([guard])
            started = time.perf_counter()
            with torch.no_grad():
                output = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            seconds = time.perf_counter() - started
            generated = output[:, prompt_length:].tolist()
            rows = []
            for row_index, ids in enumerate(generated):
                guard_reason = guard.reasons[row_index] if guard is not None and guard.reasons else None
                end = next((k for k, t in enumerate(ids) if t in stops), None)
                if guard_reason is not None:
                    # cut where the guard stopped it: what follows is padding (maybe eos-valued)
                    kept, finished, reason = ids[:guard.stopped_at[row_index]], False, guard_reason
                elif end is not None:
                    kept, finished, reason = ids[:end + 1], True, "eos"
                else:
                    kept, finished, reason = ids, False, "budget"
                text_ids = kept[:-1] if finished else kept
                rows.append((kept, finished, reason, tokenizer.decode(text_ids, skip_special_tokens=False)))
            total_tokens = sum(len(k) for k, *_ in rows) or 1
            for (task_index, _), (kept, finished, reason, text) in zip(batch, rows):
                results[task_index].append(Completion(
                    text=text, token_ids=kept, finished=finished, n_tokens=len(kept),
                    seconds=seconds * len(kept) / total_tokens, stop_reason=reason))
            if progress is not None:
                progress(len(batch) * (n_samples if greedy else 1))
    finally:
        if was_training:
            model.train()
    if greedy and n_samples > 1:
        results = [[c] + [Completion(**{**c.__dict__, "token_ids": list(c.token_ids), "metadata": dict(c.metadata)})
                          for _ in range(n_samples - 1)] for (c,) in results]
    return results
