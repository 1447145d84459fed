"""Open value spaces split between train and eval: evaluation prompts carry values never trained on."""

from __future__ import annotations

from edgesmith.plugins.environments.extraction import ExtractionEnvironment
from edgesmith.plugins.environments.toolcall import ToolcallEnvironment
from edgesmith.plugins.world import values


def test_every_value_belongs_to_one_split_and_draws_respect_the_stream():
    train = values.SplitRandom("x", "train")
    held = values.SplitRandom("x", "eval")
    drawn_train = {values.city(train) for _ in range(300)}
    drawn_eval = {values.city(held) for _ in range(300)}
    assert all(values.value_split(v) == "train" for v in drawn_train)
    assert all(values.value_split(v) == "eval" for v in drawn_eval)
    assert not drawn_train & drawn_eval
    assert len(drawn_train) > 250  # an open space: hardly any repeats in 300 draws


def test_eval_prompts_carry_values_that_no_train_prompt_has():
    for env in (ToolcallEnvironment(seed=0), ExtractionEnvironment(seed=0)):
        train = {v for t in env.tasks("train", 800) for v in values_of(t)}
        open_values = [values_of(t) for t in env.tasks("eval", 100)]
        assert sum(map(len, open_values)) > 50
        assert not {v for vs in open_values for v in vs} & train, env.name
        for task, vs in zip(env.tasks("eval", 100), open_values):  # the value is in the request to copy
            assert all(v.casefold() in task.messages[-1]["content"].casefold() for v in vs), task.messages


def values_of(task):
    """The free string values the reference answer holds (names, phrases, tickers; not dates, times,
    enums or order numbers, whose small spaces are shared by design)."""
    ref = task.reference
    if "values" in ref:  # extraction
        found = [v for v in ref["values"].values() if isinstance(v, str) and not v[:1].isdigit()]
    else:  # toolcall
        found = [x[0] for e in ref["expected"] for allowed in e.values() for x in allowed.values()
                 if x and isinstance(x[0], str) and x[0] and not x[0][:1].isdigit()]
    enums = {"celsius", "fahrenheit", "heat", "cool", "auto", "NYSE", "NASDAQ", "LSE", "basic", "pro",
             "enterprise", "pending", "shipped", "delivered", "cancelled", "USD", "EUR", "JPY", "GBP", "CHF",
             "INR", "French", "German", "Spanish", "Japanese", "Swahili", "Portuguese"}
    return {v for v in found if v not in enums and not v.startswith("A-")}
