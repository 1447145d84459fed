"""Judges and the jury: verifier, loop, length, an LLM judge (causal LM or reward model)."""

from __future__ import annotations

import pytest
import torch

from edgesmith.core.errors import ConfigError
from edgesmith.core.plugin_manager import get_plugin_manager
from edgesmith.core.options import PluginRef
from edgesmith.plugins.judges.jury import Jury, _ranks
from edgesmith.plugins.judges.length import LengthJudge
from edgesmith.plugins.judges.llm import LLMJudge
from edgesmith.plugins.judges.loop import LoopJudge
from edgesmith.plugins.judges.verifier import VerifierJudge
from stages_support import LettersEnvironment

torch.set_num_threads(1)
ENV = LettersEnvironment()
TASK = ENV.tasks("train", 1)[0]
LOOP = "the cat sat on the mat and " * 40  # runs to the budget repeating itself


def test_judges_are_registered():
    assert {"verifier", "loop", "length", "llm"} <= set(get_plugin_manager().names("judge"))


def test_verifier_loop_and_length_judges():
    assert VerifierJudge().score(TASK, ["aaaa", "abab", "zz"], ENV) == [1.0, 0.5, 0.0]
    assert LoopJudge().score(TASK, [LOOP, LOOP, "aaa"], ENV, finished=[False, True, True]) == [-1.0, 0.0, 0.0]
    assert LoopJudge({"penalty": -5.0}).score(TASK, [LOOP], ENV, finished=[False]) == [-5.0]
    assert LengthJudge().score(TASK, ["aaaa", "aa", "aaaaaaaa"], ENV) == [0.5, 0.75, 0.0]


def test_jury_weighted_sum_prefers_the_shorter_of_equally_good_answers_and_rejects_loops():
    jury = Jury.from_refs([PluginRef("verifier", 1.0), PluginRef("loop", 1.0), PluginRef("length", 0.1)],
                          "weighted_sum", get_plugin_manager())
    texts = ["a a a a a a", "aaa", "zzz", LOOP]
    verdict = jury.score(TASK, texts, ENV, finished=[True, True, True, False])
    best = max(range(4), key=lambda i: verdict.scores[i])
    worst = min(range(4), key=lambda i: verdict.scores[i])
    assert best == 1 and worst == 3
    assert set(verdict.by_judge) == {"verifier", "loop", "length"}


def test_rank_average_ties_share_ranks():
    assert _ranks([3.0, 1.0, 3.0, 2.0]) == [2.5, 0.0, 2.5, 1.0]
    jury = Jury.from_refs([{"name": "verifier", "weight": 1.0}, {"name": "length", "weight": 1.0}],
                          "rank_average", get_plugin_manager())
    verdict = jury.score(TASK, ["aaaa", "aa", "zzzzzz"], ENV)
    # verifier ranks: aaaa/aa tie at 1.5, zzzzzz 0; length ranks: aa 2, aaaa 1, zzzzzz 0
    assert verdict.scores == [pytest.approx(1.25), pytest.approx(1.75), 0.0]


def test_jury_rejects_unknown_aggregation_and_judges():
    with pytest.raises(ConfigError, match="weighted_sum, rank_average"):
        Jury([("verifier", VerifierJudge(), 1.0)], "median")
    from edgesmith.core.errors import PluginError

    with pytest.raises(PluginError, match=r"unknown judge 'oracle' \(config key dpo.judges\[0\].name\); "
                                          "registered judges: .*length"):
        Jury.from_refs([PluginRef("oracle")], "weighted_sum", get_plugin_manager(), key="dpo")


def test_a_typo_in_a_judges_options_names_the_full_key_and_what_is_accepted():
    refs = [PluginRef("verifier"), PluginRef("loop", 1.0, {"ngram_sise": 3})]
    with pytest.raises(ConfigError, match=r"dpo.judges\[1\].options.ngram_sise=3: accepted options of "
                                          r"dpo.judges\[1\].options: .*ngram_size.*penalty") as info:
        Jury.from_refs(refs, "weighted_sum", get_plugin_manager(), key="dpo")
    assert "min_span" in str(info.value)
    with pytest.raises(ConfigError, match=r"dpo.judges\[0\].options.penalty='harsh'"):
        Jury.from_refs([PluginRef("loop", 1.0, {"penalty": "harsh"})], "weighted_sum", get_plugin_manager(),
                       key="dpo")
    # the options reach the judge typed
    jury = Jury.from_refs([PluginRef("loop", 1.0, {"penalty": -3})], "weighted_sum", get_plugin_manager())
    assert jury.judges[0][1].options.penalty == -3.0
    assert jury.score(TASK, [LOOP], ENV, finished=[False]).scores == [-3.0]


@pytest.fixture(scope="module")
def tiny_llama_dirs(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from edgesmith.plugins.world.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("judges")
    tokenizer = train_tokenizer(["Is the answer correct? Reply yes or no. Reply: yes no yes no"] * 20, 300)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root / "lm")
    config.num_labels = 1
    LlamaForSequenceClassification(config).save_pretrained(root / "rm")
    for d in ("lm", "rm"):
        tokenizer.save_pretrained(root / d)
    return root


def test_llm_judge_with_a_causal_lm_compares_yes_and_no(tiny_llama_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    judge = LLMJudge({"model": str(tiny_llama_dirs / "lm")})
    scores = judge.score(TASK, ["aaaa", "zzzz"], ENV)
    assert judge.kind == "causal_lm" and len(scores) == 2 and scores[0] != scores[1]
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dirs / "lm")
    tok = AutoTokenizer.from_pretrained(tiny_llama_dirs / "lm")
    prompt = judge.rubric.format(question="user: " + TASK.messages[0]["content"], answer="aaaa")
    # edgesmith's tokenizer keeps the space as its own token: the prompt continues with it and the
    # words' first letters are compared
    space, yes = tok(" yes", add_special_tokens=False)["input_ids"][:2]
    no = tok(" no", add_special_tokens=False)["input_ids"][1]
    assert space == tok(" no", add_special_tokens=False)["input_ids"][0] and yes != no
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([tok(prompt)["input_ids"] + [space]])).logits[0, -1], -1)
    assert scores[0] == pytest.approx(float(logp[yes] - logp[no]), abs=1e-4)


def test_llm_judge_with_a_reward_model(tiny_llama_dirs):
    judge = LLMJudge({"model": str(tiny_llama_dirs / "rm")})
    scores = judge.score(TASK, ["aaaa", "zzzz"], ENV)
    assert judge.kind == "reward_model" and scores[0] != scores[1]


def test_llm_judge_needs_a_model_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"judge llm.model=.*config.json"):
        LLMJudge({"model": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"dpo.judges\[2\].options.model=.*config.json"):
        get_plugin_manager().check_refs("judge", ["verifier", "loop", {"name": "llm"}], "dpo.judges")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"judge llm.kind='oracle'.*causal_lm"):
        LLMJudge({"model": str(tmp_path), "kind": "oracle"})
