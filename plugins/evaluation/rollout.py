"""Rollouts: batched generation of completions for environment tasks (shared by eval, DPO and RL).

Prompts are rendered with the tokenizer's chat template (``add_generation_prompt=True``,
``tools=task.tools``) and decoded by a small loop over the model's forward (any transformers
causal LM with a cache, edgesmith's included). Each completion records whether it
*finished* (the model emitted an end-of-sequence token) or ran into the token budget (or was
cut by a loop guard): that bit is what the doom-loop measurement needs.

Why a loop of our own rather than ``generate``: evaluation is most of the main job's time on
a CPU, and these things make it several times faster there.

* Prompts are sorted by token length before batching (results are put back in task order),
  so a left-padded batch holds prompts of similar length and little padding is computed.
* A prompt's greedy and sampled rows share one prefill: the prompt is encoded once and its
  cache is copied to each of its rows (``Cache.batch_select_indices``), and every row then
  decodes greedily or by sampling in the same batch.
* Rows that ended (end-of-sequence or loop guard) leave the batch at once, so the steps that
  remain cost only what is still running.
* A sampled row draws its token by one uniform number against its cumulative distribution
  (:mod:`.sampling`), not by ``torch.multinomial``'s exponential per vocabulary entry.
* A bf16 model's linear layers run on weights laid out once for oneDNN while rolling out
  (:func:`edgesmith.core.linear.packed_weights`), not re-laid out at every product.

Decoding is exactly greedy (argmax) or temperature / top-p sampling; a checkpoint's
``generation_config`` extras (repetition penalty, top-k, ...) are not applied, so a loop is
measured as the model itself would produce it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from edgesmith.core.environment import Task
from edgesmith.core.errors import EdgesmithError
from edgesmith.core.linear import packed_weights

from .sampling import next_tokens


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


@dataclass
class Rollouts:
    """What :func:`generate_rollouts` returns, in task order.

    ``greedy``: one completion per task (empty when greedy decoding was off). ``sampled``:
    ``samples`` completions for each of the first ``sampled_tasks`` tasks.
    """

    greedy: list[Completion]
    sampled: list[list[Completion]]


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
                         temperature: float = 0.0, max_new_tokens: int = 256, batch_size: int = 32,
                         top_p: float = 1.0, seed: int | None = 0, loop_guard: bool | dict[str, Any] = False,
                         progress: Callable[[int], None] | None = None,
                         sort_by_length: bool = True, prefixes: Sequence[str] | None = None,
                         ) -> list[list[Completion]]:
    """``n_samples`` completions per task, in task order.

    ``temperature == 0`` is greedy decoding (the one greedy completion is repeated
    ``n_samples`` times rather than recomputed). ``loop_guard`` (True, or LoopGuard options)
    stops looping sequences early: such a completion has ``finished=False`` and the guard's
    reason as ``stop_reason``. ``batch_size`` counts generated sequences per batch.
    ``progress(k)`` is called after each batch with the number of completions it produced.
    ``prefixes``: per task, text the assistant's turn already starts with; the completions
    continue it (their text does not repeat it).
    """
    if n_samples < 1 or temperature < 0:
        raise ValueError(f"generate_completions needs n_samples >= 1 and temperature >= 0; "
                         f"got {n_samples}, {temperature}")
    greedy = temperature == 0
    done = generate_rollouts(
        model, tokenizer, tasks, greedy=greedy, samples=0 if greedy else n_samples, temperature=temperature,
        top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, loop_guard=loop_guard,
        sort_by_length=sort_by_length, prefixes=prefixes,
        progress=None if progress is None else (lambda k: progress(k * n_samples if greedy else k)))
    if not greedy:
        return done.sampled
    return [[c] + [Completion(**{**c.__dict__, "token_ids": list(c.token_ids), "metadata": dict(c.metadata)})
                   for _ in range(n_samples - 1)] for c in done.greedy]


def generate_rollouts(model: Any, tokenizer: Any, tasks: Sequence[Task], *, greedy: bool = True, samples: int = 0,
                      sampled_tasks: int | None = None, temperature: float = 0.8, top_p: float = 1.0,
                      max_new_tokens: int = 256, batch_size: int = 32, seed: int | None = 0,
                      loop_guard: bool | dict[str, Any] = False, progress: Callable[[int], None] | None = None,
                      sort_by_length: bool = True, prefixes: Sequence[str] | None = None) -> Rollouts:
    """Greedy and sampled completions of ``tasks`` in one pass (one prefill per prompt and batch).

    Each task gets one greedy row (when ``greedy``) and, for the first ``sampled_tasks``
    tasks (all when None), ``samples`` rows sampled at ``temperature`` / ``top_p``. Rows
    are decoded ``batch_size`` at a time, prompts of similar length together
    (``sort_by_length``); the results come back in task order either way.
    """
    if max_new_tokens < 1 or batch_size < 1 or samples < 0 or not 0 < top_p <= 1:
        raise ValueError("generate_rollouts needs max_new_tokens >= 1, batch_size >= 1, samples >= 0, "
                         f"0 < top_p <= 1; got {max_new_tokens}, {batch_size}, {samples}, {top_p}")
    if samples and temperature <= 0:
        raise ValueError(f"sampling needs temperature > 0; got {temperature}")
    n_sampled = len(tasks) if sampled_tasks is None else max(0, min(sampled_tasks, len(tasks)))
    prompts = render_prompts(tokenizer, tasks)
    if prefixes is not None:
        if len(prefixes) != len(tasks):
            raise ValueError(f"prefixes: one per task expected, got {len(prefixes)} for {len(tasks)} tasks")
        prompts = [p + prefix for p, prefix in zip(prompts, prefixes)]
    stops = eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if prompts else []
    # one row = one sequence to decode: (task index, sample index or -1 for greedy)
    order = range(len(tasks))
    if sort_by_length:  # similar lengths share a batch: less left padding to compute
        order = sorted(order, key=lambda i: len(prompt_ids[i]))
    rows = [(i, j) for i in order for j in ([-1] if greedy else []) + list(range(samples if i < n_sampled else 0))]
    generator = None
    device = next(model.parameters()).device
    if seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
    greedy_out: list[Completion | None] = [None] * len(tasks)
    sampled_out: list[list[Completion | None]] = [[None] * samples for _ in range(n_sampled)]
    was_training = model.training
    model.eval()
    try:
        with packed_weights(model, rows=batch_size):  # bf16 layers: one weight layout for every batch
            for start in range(0, len(rows), batch_size):
                batch = rows[start:start + batch_size]
                started = time.perf_counter()
                decoded = _decode_batch(model, [prompt_ids[i] for i, _ in batch], [j < 0 for _, j in batch],
                                        stops=stops, pad_id=pad_id, max_new_tokens=max_new_tokens,
                                        temperature=temperature, top_p=top_p, generator=generator,
                                        loop_guard=loop_guard)
                seconds = time.perf_counter() - started
                total_tokens = sum(len(kept) for kept, *_ in decoded) or 1
                for (task_index, sample), (kept, finished, reason) in zip(batch, decoded):
                    text_ids = kept[:-1] if finished else kept
                    completion = Completion(text=tokenizer.decode(text_ids, skip_special_tokens=False), token_ids=kept,
                                            finished=finished, n_tokens=len(kept),
                                            seconds=seconds * len(kept) / total_tokens, stop_reason=reason)
                    if sample < 0:
                        greedy_out[task_index] = completion
                    else:
                        sampled_out[task_index][sample] = completion
                if progress is not None:
                    progress(len(batch))
    finally:
        if was_training:
            model.train()
    return Rollouts(greedy=[c for c in greedy_out if c is not None] if greedy else [],
                    sampled=[list(per_task) for per_task in sampled_out])  # type: ignore[arg-type]


def _forward_names(model: Any) -> tuple[str, bool]:
    """The model forward's cache keyword (``cache`` in transformers 5, else ``past_key_values``)
    and whether it takes ``logits_to_keep`` (then the prefill computes only the last logits)."""
    parameters = inspect.signature(model.forward).parameters
    cache_key = "cache" if "cache" in parameters or "past_key_values" not in parameters else "past_key_values"
    return cache_key, "logits_to_keep" in parameters


def _rows_selectable(cache: Any) -> bool:
    """Whether ``cache.batch_select_indices`` works on every layer (checked before anything is changed:
    a selection failing half-way would leave layers of different batch sizes)."""
    if not callable(getattr(cache, "batch_select_indices", None)):
        return False
    layers = getattr(cache, "layers", None)
    # e.g. transformers 5's LinearAttentionLayer (LFM2's conv states) has no batch_select_indices
    return layers is None or all(callable(getattr(layer, "batch_select_indices", None)) for layer in layers)


def _left_padded(prompts: list[tuple[int, ...]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for k, ids in enumerate(prompts):  # left padding: every row's next token is at the end
        input_ids[k, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[k, width - len(ids):] = 1
    return input_ids.to(device), attention_mask.to(device)


def _decode_batch(model: Any, prompts: list[list[int]], greedy_rows: list[bool], *, stops: list[int], pad_id: int,
                  max_new_tokens: int, temperature: float, top_p: float, generator: torch.Generator | None,
                  loop_guard: bool | dict[str, Any]) -> list[tuple[list[int], bool, str]]:
    """Decodes one batch of rows; returns each row's (kept ids, finished, stop reason).

    With a cache whose rows can be selected, each distinct prompt is prefilled once and rows
    that ended leave the batch; otherwise every row is prefilled and decodes to the end of
    the batch (its tokens after its end are ignored).
    """
    device = next(model.parameters()).device
    cache_key, keeps_logits = _forward_names(model)
    extra = {"logits_to_keep": 1} if keeps_logits else {}
    n_rows = len(prompts)
    unique: dict[tuple[int, ...], int] = {}
    row_prompt = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
    distinct = list(unique)
    selectable = _SELECTABLE.get(type(model), True)
    if not selectable:
        distinct, row_prompt = [tuple(p) for p in prompts], list(range(n_rows))
    guard = None
    if loop_guard:
        from edgesmith.plugins.loops.guard import LoopGuard

        guard = LoopGuard(0, eos_token_id=stops, **(loop_guard if isinstance(loop_guard, dict) else {}))
    generated = torch.full((n_rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    lengths = [0] * n_rows
    outcome: list[tuple[bool, str] | None] = [None] * n_rows
    stop_ids = torch.tensor(stops, device=device)
    with torch.inference_mode(), packed_weights(model, rows=n_rows):
        input_ids, attention_mask = _left_padded(distinct, pad_id, device)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # real tokens count from 0
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                    **extra)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        selectable = _SELECTABLE.setdefault(type(model), _rows_selectable(cache))
        index = torch.tensor(row_prompt, device=device)
        if row_prompt != list(range(len(distinct))):  # copy each prompt's state to its rows
            if not selectable:  # found out just now: prefill every row instead
                return _decode_batch(model, prompts, greedy_rows, stops=stops, pad_id=pad_id,
                                     max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                     generator=generator, loop_guard=loop_guard)
            cache.batch_select_indices(index)
        logits = out.logits[:, -1][index]
        attention_mask, last_position = attention_mask[index], positions[:, -1][index]
        active = torch.arange(n_rows, device=device)  # cache row -> row
        alive = torch.ones(n_rows, dtype=torch.bool, device=device)  # cache rows still decoding
        greedy_mask = torch.tensor(greedy_rows, device=device)
        workspace = None if all(greedy_rows) else torch.empty(
            (n_rows, logits.shape[-1]), dtype=torch.float32, device=device)  # sampled rows' logits
        for step in range(max_new_tokens):
            tokens = next_tokens(logits, greedy_mask[active], temperature, top_p, generator, workspace)
            tokens = torch.where(alive, tokens, torch.full_like(tokens, pad_id))
            generated[active[alive], step] = tokens[alive]
            ended = torch.isin(tokens, stop_ids) & alive
            if guard is not None:  # it sees every row's tokens so far; rows that ended are skipped by it
                ended = ended | (guard(generated[:, :step + 1])[active] & alive)
            for r in active[ended].tolist():
                lengths[r] = step + 1
                outcome[r] = (True, "eos") if int(generated[r, step]) in stops else (False, guard.reasons[r])
            alive = alive & ~ended
            if step == max_new_tokens - 1 or not bool(alive.any()):
                break
            if bool(ended.any()) and selectable:  # ended rows leave the batch: later steps cost only what runs
                keep = alive.nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                active, tokens, alive = active[keep], tokens[keep], alive[keep]
                attention_mask, last_position = attention_mask[keep], last_position[keep]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(active), 1)], dim=-1)
            last_position = last_position + 1
            out = model(input_ids=tokens.unsqueeze(-1), attention_mask=attention_mask,
                        position_ids=last_position.unsqueeze(-1), use_cache=True, **{cache_key: cache})
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
            logits = out.logits[:, -1]
    rows = generated.tolist()
    results = []
    for r in range(n_rows):
        if outcome[r] is None:  # ran to the budget
            results.append((rows[r], False, "budget"))
        else:
            finished, reason = outcome[r]
            results.append((rows[r][:lengths[r]], finished, reason))
    return results


# model class -> whether its cache's rows can be selected (learnt on its first batch)
_SELECTABLE: dict[type, bool] = {}
