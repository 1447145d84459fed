"""The ``llm`` judge: any transformers causal LM with a rubric prompt, or a reward model.

A causal LM is asked the rubric question about each answer and scores
``log p(yes) - log p(no)`` for its next token; a sequence-classification model
(``*ForSequenceClassification`` in its config, one label) scores its logit directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgesmith.core.environment import Environment, Task
from edgesmith.core.errors import ConfigError
from edgesmith.core.judge import Judge

DEFAULT_RUBRIC = (
    "You are grading an assistant's answer.\n"
    "Conversation:\n{question}\n\nAnswer:\n{answer}\n\n"
    "Is the answer correct, concise and free of repetition? Reply yes or no.\nReply:"
)
KINDS = ("auto", "causal_lm", "reward_model")


def _conversation_text(task: Task) -> str:
    return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in task.messages)


@dataclass
class LLMJudgeOptions:
    """Options of the ``llm`` judge.

    - ``model``: path of a saved transformers model with its tokenizer (required)
    - ``kind``: ``auto`` (from the config's architectures), ``causal_lm`` or ``reward_model``
    - ``rubric``: prompt template with ``{question}`` and ``{answer}`` (causal LM only)
    - ``yes`` / ``no``: the answer words whose next-token log-probabilities are compared
    """

    model: str = ""
    kind: str = "auto"
    rubric: str = DEFAULT_RUBRIC
    yes: str = " yes"
    no: str = " no"

    def __post_init__(self) -> None:
        if not self.model or not (Path(str(self.model)) / "config.json").is_file():
            raise ConfigError("model", self.model,
                              "a directory holding a saved transformers model (config.json) and its tokenizer")
        if self.kind not in KINDS:
            raise ConfigError("kind", self.kind, ", ".join(KINDS))


class LLMJudge(Judge):
    """Judges with a model from ``model`` (a local directory); options: :class:`LLMJudgeOptions`."""

    name = "llm"
    options_class = LLMJudgeOptions

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.model_path = str(self.options.model)
        self.kind = self.options.kind  # "auto" is resolved from the model's config when it loads
        self.rubric = self.options.rubric
        self.yes, self.no = self.options.yes, self.options.no
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification,
                                  AutoTokenizer)

        config = AutoConfig.from_pretrained(self.model_path)
        if self.kind == "auto":
            archs = getattr(config, "architectures", None) or []
            self.kind = "reward_model" if any("SequenceClassification" in a for a in archs) else "causal_lm"
        loader = AutoModelForSequenceClassification if self.kind == "reward_model" else AutoModelForCausalLM
        self._model = loader.from_pretrained(self.model_path).eval()
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)

    def _answer_tokens(self) -> tuple[list[int], int, int]:
        """The tokens ``yes`` and ``no`` share at their start, then the first token of each that differs.

        Tokenizers that keep a space as its own token (edgesmith's) start both `` yes`` and
        `` no`` with the same space token; the judgement is the first token after it.
        """
        ids = []
        for word in (self.yes, self.no):
            found = self._tokenizer(word, add_special_tokens=False)["input_ids"]
            if not found:
                raise ConfigError("judge llm.yes/no", word, "a word the judge's tokenizer encodes to at least one token")
            ids.append(found)
        yes, no = ids
        shared = 0
        while shared < min(len(yes), len(no)) and yes[shared] == no[shared]:
            shared += 1
        if shared == min(len(yes), len(no)):
            raise ConfigError("judge llm.yes/no", [self.yes, self.no],
                              "two words whose tokens differ (one must not be a prefix of the other)")
        return yes[:shared], yes[shared], no[shared]

    @torch.no_grad()
    def score(self, task: Task, completions: list[str], environment: Environment,
              finished: list[bool] | None = None) -> list[float]:
        self._load()
        tok, model = self._tokenizer, self._model
        if self.kind == "reward_model":
            scores = []
            for text in completions:
                if tok.chat_template:
                    text = tok.apply_chat_template(
                        task.messages + [{"role": "assistant", "content": text}], tokenize=False)
                else:
                    text = _conversation_text(task) + "\nassistant: " + text
                inputs = tok(text, return_tensors="pt", truncation=True)
                scores.append(float(model(**inputs).logits[0, 0]))
            return scores
        shared, yes, no = self._answer_tokens()
        scores = []
        for text in completions:
            prompt = self.rubric.format(question=_conversation_text(task), answer=text)
            inputs = tok(prompt, return_tensors="pt")
            if shared:  # the prompt continues with the answer words' common start (e.g. a space)
                extra = torch.tensor([shared], dtype=inputs["input_ids"].dtype)
                inputs = {"input_ids": torch.cat([inputs["input_ids"], extra], 1),
                          "attention_mask": torch.cat([inputs["attention_mask"], torch.ones_like(extra)], 1)}
            logprobs = torch.log_softmax(model(**inputs).logits[0, -1].float(), dim=-1)
            scores.append(float(logprobs[yes] - logprobs[no]))
        return scores
