"""Options of ``edgesmith eval`` and of the ``eval`` stage (one dataclass, validated up front)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from edgesmith.core.errors import ConfigError
from edgesmith.plugins.loops.detector import LoopDetectorOptions


@dataclass
class EvalOptions:
    """What to measure and how.

    ``envs``: environment names (``edgesmith plugins`` lists them); ``n_prompts``: eval-split
    prompts per environment; ``greedy``: one greedy completion per prompt; ``samples``: sampled
    completions per prompt at ``temperature`` (0 = no sampled run); ``sampled_prompts``: how
    many of the ``n_prompts`` prompts (the first ones) also get the ``samples`` sampled
    completions (null: all of them), so a large greedy set need not multiply the sampling
    cost; ``max_new_tokens``: the token budget (a generation that hits it without ending may
    be a loop); ``batch_size``: sequences decoded together (on a CPU, larger batches amortise
    each step's fixed cost; lower it for large models or long prompts, whose prefill
    memory grows with it); ``difficulty`` and
    ``env_options`` (``{env: {option: value}}``) configure the environments; ``tasks_file``:
    a JSONL file of fixed tasks instead (one ``{"env", "messages", "reference", ...}`` per
    line); ``loop_guard``: stop looping generations early (they still count as loops);
    ``loop_detector``: the loop detector's thresholds
    (:class:`~edgesmith.plugins.loops.detector.LoopDetectorOptions`); ``quant``:
    ``int8`` evaluates the checkpoint with int8 weight-only linear layers
    (:func:`edgesmith.core.linear.quantize_int8`, bf16 activations) instead of float32,
    ``int8_dynamic`` with int8 weights and int8 rows quantized per call (fbgemm, x86;
    :func:`edgesmith.core.linear.quantize_int8_dynamic`, float32 elsewhere).
    """

    envs: list[str] = field(default_factory=lambda: ["toolcall", "reasoning"])
    n_prompts: int = 50
    greedy: bool = True
    samples: int = 4
    sampled_prompts: Optional[int] = 50
    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 256
    batch_size: int = 64
    difficulty: int = 1
    seed: int = 0
    env_options: dict[str, Any] = field(default_factory=dict)
    tasks_file: Optional[str] = None
    loop_guard: bool = False
    loop_detector: LoopDetectorOptions = field(default_factory=LoopDetectorOptions)
    quant: Optional[str] = None

    def __post_init__(self) -> None:
        from edgesmith.core.linear import QUANT_MODES

        if self.quant is not None and self.quant not in QUANT_MODES:
            raise ConfigError("quant", self.quant, f"null (the checkpoint's weights in float32) or one of: "
                                                   f"{', '.join(QUANT_MODES)} (int8 weights per channel, on CPU)")
        if self.n_prompts < 1:
            raise ConfigError("n_prompts", self.n_prompts, "an integer >= 1 (prompts per environment)")
        if self.samples < 0:
            raise ConfigError("samples", self.samples, "an integer >= 0 (sampled completions per prompt)")
        if self.sampled_prompts is not None and self.sampled_prompts < 1:
            raise ConfigError("sampled_prompts", self.sampled_prompts,
                              "an integer >= 1 (prompts that also get the sampled completions) or null (all "
                              "n_prompts prompts); to skip sampling set samples=0")
        if not self.greedy and self.samples == 0:
            raise ConfigError("samples", self.samples, "an integer >= 1 when greedy=false",
                              detail="with greedy=false and samples=0 nothing would be generated")
        if self.samples and self.temperature <= 0:
            raise ConfigError("temperature", self.temperature, "a number > 0 for sampled generation")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p", self.top_p, "a number in (0, 1]")
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens", self.max_new_tokens, "an integer >= 1")
        if self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "an integer >= 1 (sequences decoded together)")
        if not self.envs and not self.tasks_file:
            raise ConfigError("envs", list(self.envs), "a non-empty list of environment names (or tasks_file=PATH)",
                              detail="the evaluation set would be empty")
