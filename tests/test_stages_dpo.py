"""On-policy DPO: preference pairs from a jury, the length-normalized DPO round, all-ties."""

from __future__ import annotations

import json

import pytest
import torch

from edgesmith.core.errors import ConfigError, StageError
from edgesmith.core.pipeline import run_pipeline
from edgesmith.core.stage import StageContext
from edgesmith.core.options import PluginRef
from edgesmith.plugins.judges.jury import Jury
from edgesmith.plugins.stages.dpo import preference_losses, train_dpo, training_steps
from edgesmith.plugins.stages.dpo_config import DPOStageConfig
from edgesmith.plugins.evaluation.rollout import Completion
from edgesmith.plugins.stages.loop_branches import LoopBranch, _chosen_side, branch_pairs, branch_point, first_repeat
from edgesmith.plugins.stages.preferences import PreferencePair, build_preferences, prompt_text
from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
from stages_support import LettersEnvironment, NeverEnvironment, base_model, registered_test_plugins, run_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def manager():
    with registered_test_plugins() as registered:
        yield registered


@pytest.mark.slow
def test_pairs_prefer_the_higher_score_and_include_the_greedy_sample(tmp_path_factory, manager):
    from edgesmith.plugins.evaluation.rollout import generate_completions

    model, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    env = LettersEnvironment(seed=0)
    tasks = env.tasks("train", 6)
    jury = Jury.from_refs([PluginRef("verifier", 1.0), PluginRef("loop", 1.0), PluginRef("length", 0.1)],
                          "weighted_sum", manager)
    result = build_preferences(model, tokenizer, [("letters", t) for t in tasks], {"letters": env}, jury,
                               samples=4, temperature=1.5, max_new_tokens=10, round_index=0, seed=0)
    assert result.pairs and len(result.pairs) + result.ties == len(tasks)
    greedy = generate_completions(model, tokenizer, tasks, n_samples=1, temperature=0.0, max_new_tokens=10)
    greedy_text = {t.id: g[0].text for t, g in zip(tasks, greedy)}
    for pair in result.pairs:
        assert pair.chosen_score > pair.rejected_score
        assert len(pair.candidates) == 5
        assert pair.chosen_score == max(c.score for c in pair.candidates)
        assert pair.rejected_score == min(c.score for c in pair.candidates)
        marked = [c for c in pair.candidates if c.greedy]
        assert len(marked) == 1 and marked[0].text == greedy_text[pair.task_id]


def _margin(model, tokenizer, prompt: str, chosen: str, rejected: str) -> float:
    """log p(chosen | prompt) - log p(rejected | prompt), per token (what sigmoid_norm compares)."""
    def avg_logp(completion: str) -> float:
        p_ids = tokenizer(prompt)["input_ids"]
        ids = tokenizer(prompt + completion)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        return float(logp[len(p_ids) - 1:].mean())
    return avg_logp(chosen) - avg_logp(rejected)


@pytest.mark.slow
def test_a_dpo_round_raises_the_chosen_over_rejected_margin(tmp_path, tmp_path_factory, manager):
    source = base_model(tmp_path_factory)
    model, tokenizer = load_model_and_tokenizer(source)
    env = LettersEnvironment(seed=0)
    pairs = [PreferencePair(round=0, environment="letters", task_id=t.id, prompt=prompt_text(tokenizer, t),
                            chosen="a a a a<|im_end|>", rejected="the cat sat<|im_end|>",
                            chosen_score=1.0, rejected_score=0.0) for t in env.tasks("train", 8)]
    before = sum(_margin(model, tokenizer, p.prompt, p.chosen, p.rejected) for p in pairs) / len(pairs)
    options = DPOStageConfig(batch_size=4, steps_per_round=6, learning_rate=5e-3, beta=0.5, max_length=128)
    ctx = StageContext("dpo", config=None, options=options, out_dir=tmp_path, artifacts={}, plugins=manager)
    trained, facts = train_dpo(ctx, source, pairs, options, tmp_path / "round_0", phase="round 0")
    assert facts["steps"] == 6
    model, _ = load_model_and_tokenizer(trained)
    after = sum(_margin(model, tokenizer, p.prompt, p.chosen, p.rejected) for p in pairs) / len(pairs)
    assert after > before + 0.05, (before, after)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in logged)


def test_sigmoid_norm_is_the_default_and_trl_knows_it():
    from trl import DPOConfig

    assert DPOStageConfig().loss_type == "sigmoid_norm"
    assert DPOConfig(output_dir="/tmp/unused", loss_type=["sigmoid_norm"], bf16=False).loss_type == ["sigmoid_norm"]


@pytest.mark.slow
def test_all_ties_is_a_clear_error(tmp_path, tmp_path_factory, manager):
    # The untrained model never says the code: the verifier scores every candidate 0.
    cfg = run_config(tmp_path, ["dpo"], init_from=str(base_model(tmp_path_factory)),
                     dpo={"environments": ["never"], "judges": [{"name": "verifier", "weight": 1.0}],
                          "reference_chosen": False})
    with pytest.raises(StageError, match="tie") as info:
        run_pipeline(cfg, tmp_path / "run", manager)
    assert "dpo.temperature" in str(info.value)
    assert (tmp_path / "run" / "dpo" / "round_0" / "pairs.jsonl").read_text() == ""


def _never_preferences(manager, tmp_path_factory, **options):
    model, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    env = NeverEnvironment(seed=0)
    tasks = env.tasks("train", 4)
    jury = Jury.from_refs([PluginRef("verifier", 1.0), PluginRef("length", 0.1)], "weighted_sum", manager)
    return build_preferences(model, tokenizer, [("never", t) for t in tasks], {"never": env}, jury, samples=3,
                             temperature=1.5, max_new_tokens=8, round_index=0, seed=0, **options)


@pytest.mark.slow
def test_when_no_sample_is_good_the_reference_solution_is_chosen(tmp_path_factory, manager):
    # Every sample is wrong (verifier 0); the reference solution scores 1 with the same jury.
    result = _never_preferences(manager, tmp_path_factory, min_margin=0.5, reference_chosen=True)
    assert len(result.pairs) == 4 and result.ties == 0
    for pair in result.pairs:
        assert pair.chosen == "zebra-quartz-7" and pair.chosen_score >= 1.0
        assert [c.reference for c in pair.candidates].count(True) == 1
        assert pair.rejected != pair.chosen and pair.rejected_score < 0.2
    assert result.candidates == 4 * 4  # the reference is not counted as a sample


@pytest.mark.slow
def test_rejected_cut_keeps_only_the_first_token_where_the_rejected_side_parts(tmp_path_factory, manager):
    whole = _never_preferences(manager, tmp_path_factory, min_margin=0.5, reference_chosen=True)
    cut = _never_preferences(manager, tmp_path_factory, min_margin=0.5, reference_chosen=True,
                             rejected_cut="parting")
    _, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    assert len(cut.pairs) == len(whole.pairs) == 4
    for before, after in zip(whole.pairs, cut.pairs):
        assistant = before.prompt
        # the same text, split elsewhere: the shared start moved into the prompt
        assert after.prompt + after.chosen == assistant + before.chosen.removesuffix("<|im_end|>")
        assert after.prompt.startswith(assistant)
        shared = after.prompt[len(assistant):]
        assert before.rejected.startswith(shared) and not before.rejected.startswith(shared + after.chosen)
        # the rejected sample's first own character(s), or its EOS where it stopped and the chosen went on
        assert after.rejected or after.rejected_ends
        # (an untrained model's samples hold undecodable bytes, written as U+FFFD: 3 tokens here)
        assert before.rejected.startswith(shared + after.rejected)
        assert len(tokenizer(after.rejected, add_special_tokens=False)["input_ids"]) <= 4


@pytest.mark.slow
def test_rejected_each_pairs_every_distinct_loser_with_the_chosen(tmp_path_factory, manager):
    worst = _never_preferences(manager, tmp_path_factory, min_margin=0.5, reference_chosen=True)
    each = _never_preferences(manager, tmp_path_factory, min_margin=0.5, reference_chosen=True, rejected="each")
    assert len(worst.pairs) == 4 and len(each.pairs) > len(worst.pairs)
    by_task: dict[str, list] = {}
    for pair in each.pairs:
        by_task.setdefault(pair.task_id, []).append(pair)
    for task_id, pairs in by_task.items():
        samples = {c.text for c in pairs[0].candidates if not c.reference}
        assert sorted(p.rejected for p in pairs) == sorted(samples), task_id  # each distinct sample once
        assert {p.chosen for p in pairs} == {"zebra-quartz-7"}
        assert all(not p.candidates for p in pairs[1:])  # the candidates are stored once per prompt
    # the worst-only pairing keeps the same chosen and one of those rejected
    assert {p.task_id for p in worst.pairs} == set(by_task)


@pytest.mark.slow
def test_rejected_none_makes_no_whole_completion_pairs(tmp_path_factory, manager):
    # the whole-completion pairs of this round exist (test above); with none there are none
    assert _never_preferences(manager, tmp_path_factory, min_margin=0.5, reference_chosen=True,
                              rejected="none").pairs == []
    assert DPOStageConfig(rejected="none", loop_branches=2).rejected == "none"
    with pytest.raises(ConfigError, match="dpo.rejected='none'.*loop_branches >= 1"):
        DPOStageConfig(rejected="none")


def test_a_loop_branches_at_its_first_repeat():
    from edgesmith.plugins.loops.detector import detect_loop, text_to_tokens

    unit = "Try 15>66>18: dead end, back to 15.\n"
    text = "Start at 15.\n" + unit * 7 + "Try 15>66>1"
    tokens = text_to_tokens(text)
    verdict = detect_loop(text, finished=False)
    at, period = branch_point(verdict)
    assert verdict.rule == "period" and period == len(text_to_tokens(unit))
    prefix, repeat = "".join(tokens[:at]), "".join(tokens[at:at + period])
    # the prefix holds the loop's first unit once; what follows is the same unit again
    assert prefix.count("Try 15>66>18") == 1 and prefix.startswith("Start at 15.\n")
    assert repeat in unit + unit and text.startswith(prefix + repeat)
    assert branch_point(detect_loop(text, finished=True)) is None  # a finished text never loops
    assert branch_point(detect_loop("Start at 15.\nTry 15>66>18: reached 18.", finished=False)) is None


def test_a_loop_without_a_stable_period_branches_where_it_first_goes_round():
    from edgesmith.plugins.loops.detector import detect_loop, text_to_tokens

    a, b = "Try 15>66>18: dead end, back to 15.\n", "Try 15>40>90: dead end, back to 15.\n"
    text = "Start at 15.\n" + "".join(a if step == "a" else b for step in "abaabbabbabaabbaab")
    tokens = text_to_tokens(text)
    unit = len(text_to_tokens(a))
    verdict = detect_loop(text, finished=False)
    assert verdict.rule == "ngram" and branch_point(verdict) is None  # no periodic tail to cut at
    at, length = first_repeat(tokens, min_tokens=unit - 2)
    # the first re-written step is the third line (a again after a and b), cut where it starts
    # to copy: the prefix holds a and b once, the repeat is a once (and how the next line begins)
    prefix, repeat = "".join(tokens[:at]), "".join(tokens[at:at + length])
    assert text.startswith(prefix + repeat) and prefix.count("66>18") == 1 and prefix.count("40>90") == 1
    assert repeat.count("66>18") == 1 and "40>90" not in repeat and length < 2 * unit
    # the phrasing a right trace repeats between different arms is shorter than a step
    right = "Start at 15.\n" + a + b + "Try 15>70>71*: reached 71.\nFinal answer: 15,70,71"
    assert first_repeat(text_to_tokens(right), min_tokens=unit - 2) is None
    assert first_repeat([1, 2, 3], min_tokens=24) is None


@pytest.mark.slow
def test_branch_pairs_prefer_a_continuation_over_the_repeat(tmp_path_factory, manager):
    model, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    env = NeverEnvironment(seed=0)
    tasks = env.tasks("train", 3)
    jury = Jury.from_refs([PluginRef("verifier", 1.0), PluginRef("loop", 1.0)], "weighted_sum", manager)
    loops = [LoopBranch(task=t, prefix="the cat", repeat=" the cat", loop_text="the cat" * 40, loop_score=-1.0)
             for t in tasks]
    pairs = branch_pairs(model, tokenizer, "never", env, jury, loops, branches=3, temperature=1.0,
                         max_new_tokens=6, round_index=0, seed=0, min_margin=0.5)
    # a short sampled continuation is wrong (0) but no loop: 1 above the loop's -1
    assert len(pairs) == 3
    for pair, task in zip(pairs, tasks):
        assert pair.prompt == prompt_text(tokenizer, task) + "the cat" and pair.prefix == "the cat"
        assert pair.rejected == " the cat" and pair.rejected_score == -1.0
        assert pair.chosen in [c.text for c in pair.candidates] and len(pair.candidates) == 3
        assert pair.chosen_score - pair.rejected_score >= 0.5
    # one step against one step: the chosen continuation is cut to the repeat's length in tokens
    stepped = [LoopBranch(task=t, prefix="the cat", repeat=" the cat", loop_text="the cat" * 40, loop_score=-1.0,
                          repeat_tokens=2) for t in tasks]
    kwargs = dict(branches=3, temperature=1.0, max_new_tokens=6, round_index=0, seed=0, min_margin=0.5)
    cut = branch_pairs(model, tokenizer, "never", env, jury, stepped, **kwargs)
    whole = branch_pairs(model, tokenizer, "never", env, jury, stepped, chosen="rest", **kwargs)
    assert [p.chosen for p in whole] == [p.chosen for p in pairs]  # same seed, same continuations
    assert all(len(short.chosen) < len(full.chosen) for short, full in zip(cut, whole))
    step = "Try 15>80>70*: reached 70."
    ids = tokenizer(step + "\nFinal answer: 15,80,70", add_special_tokens=False)["input_ids"]
    continuation = Completion(text=tokenizer.decode(ids), token_ids=ids, finished=True, n_tokens=len(ids), seconds=0.0)
    assert _chosen_side(tokenizer, continuation, stepped[0], "rest") == continuation.text
    n_step = len(tokenizer(step, add_special_tokens=False)["input_ids"])
    one_step = LoopBranch(task=tasks[0], prefix="", repeat="", loop_text="", loop_score=-1.0, repeat_tokens=n_step)
    assert _chosen_side(tokenizer, continuation, one_step, "step") == tokenizer.decode(ids[:n_step])
    with pytest.raises(ValueError, match="chosen='all'"):
        branch_pairs(model, tokenizer, "never", env, jury, stepped, chosen="all", **kwargs)
    # a continuation whose first step is the repeat again cannot be the chosen step: greedy
    # continuations (temperature 0) all begin with what the model writes next, made the repeat here
    from edgesmith.plugins.evaluation.rollout import generate_completions

    nexts = generate_completions(model, tokenizer, tasks, temperature=0.0, max_new_tokens=6, prefixes=["the cat"] * 3)
    repeats = [LoopBranch(task=t, prefix="the cat", repeat=tokenizer.decode(list(n[0].token_ids)[:2]),
                          loop_text="the cat" * 40, loop_score=-1.0, repeat_tokens=2) for t, n in zip(tasks, nexts)]
    greedy_kwargs = {**kwargs, "temperature": 0.0}
    assert branch_pairs(model, tokenizer, "never", env, jury, repeats, **greedy_kwargs) == []
    assert len(branch_pairs(model, tokenizer, "never", env, jury, repeats, chosen="rest", **greedy_kwargs)) == 3
    # a loop no continuation beats by the margin gives no pair
    even = [LoopBranch(task=t, prefix="the cat", repeat=" the cat", loop_text="x", loop_score=0.0) for t in tasks]
    assert branch_pairs(model, tokenizer, "never", env, jury, even, branches=2, temperature=1.0, max_new_tokens=6,
                        round_index=0, seed=0, min_margin=0.5) == []
    with pytest.raises(ConfigError, match="dpo.loop_branches"):
        DPOStageConfig(loop_branches=-1)


@pytest.mark.slow
def test_branch_pairs_can_require_a_verified_right_continuation(tmp_path_factory, manager):
    from edgesmith.core.environment import Verification

    model, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    tasks = NeverEnvironment(seed=0).tasks("train", 3)
    # the loop judge alone ties every short continuation: the jury's pick is the first one
    jury = Jury.from_refs([PluginRef("loop", 1.0)], "weighted_sum", manager)
    loops = [LoopBranch(task=t, prefix="the cat", repeat=" the cat", loop_text="the cat" * 40, loop_score=-1.0)
             for t in tasks]
    kwargs = dict(branches=3, temperature=1.0, max_new_tokens=6, round_index=0, seed=0, min_margin=0.5, chosen="rest")
    never = NeverEnvironment(seed=0)
    plain = branch_pairs(model, tokenizer, "never", never, jury, loops, **kwargs)
    assert len(plain) == 3
    assert branch_pairs(model, tokenizer, "never", never, jury, loops, correct_only=True, **kwargs) == []

    # an environment that accepts one other continuation per task: that one becomes the chosen side
    right = {t.id: next(c.text for c in p.candidates if c.text != p.chosen) for t, p in zip(tasks, plain)}

    class OneRight(NeverEnvironment):
        def verify(self, task, completion):
            ok = completion == "the cat" + right[task.id]
            return Verification(1.0 if ok else 0.0, ok, {})

    picked = branch_pairs(model, tokenizer, "never", OneRight(seed=0), jury, loops, correct_only=True, **kwargs)
    assert [p.chosen for p in picked] == [right[t.id] for t in tasks]
    assert DPOStageConfig().branch_correct_only is False


def test_an_unknown_rejected_mode_is_refused():
    with pytest.raises(ConfigError, match="dpo.rejected"):
        DPOStageConfig(rejected="all")


def test_a_branch_pairs_chosen_side_is_one_step_unless_rest_is_asked_for():
    assert DPOStageConfig().branch_chosen == "step" and DPOStageConfig(branch_chosen="rest").branch_chosen == "rest"
    with pytest.raises(ConfigError, match=r"dpo.branch_chosen='all': accepted step, rest"):
        DPOStageConfig(branch_chosen="all")


def test_sft_weight_adds_trl_sft_loss_beside_the_preference_loss():
    from trl import DPOConfig

    assert preference_losses(DPOStageConfig()) == {"loss_type": ["sigmoid_norm"]}
    losses = preference_losses(DPOStageConfig(sft_weight=0.5))
    assert losses == {"loss_type": ["sigmoid_norm", "sft"], "loss_weights": [1.0, 0.5]}
    assert DPOConfig(output_dir="/tmp/unused", bf16=False, **losses).loss_weights == [1.0, 0.5]
    with pytest.raises(ConfigError, match="dpo.sft_weight"):
        DPOStageConfig(sft_weight=-1.0)


@pytest.mark.slow
def test_a_difference_below_the_margin_is_a_tie(tmp_path_factory, manager):
    # Without the reference, candidates differ only by the length judge (weight 0.1): no pair
    # may teach "the shorter wrong answer", while margin 0 pairs them by length.
    assert _never_preferences(manager, tmp_path_factory, min_margin=0.5).pairs == []
    by_length = _never_preferences(manager, tmp_path_factory, min_margin=0.0)
    assert by_length.pairs and all(0 < p.chosen_score - p.rejected_score <= 0.1 for p in by_length.pairs)


def test_a_negative_margin_is_refused():
    with pytest.raises(ConfigError, match="dpo.min_margin"):
        DPOStageConfig(min_margin=-0.1)


@pytest.mark.slow
def test_rounds_regenerate_on_policy_and_chain(tmp_path, tmp_path_factory, manager):
    cfg = run_config(tmp_path, ["dpo"], init_from=str(base_model(tmp_path_factory)),
                     dpo={"rounds": 2, "prompts_per_environment": 3})
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    assert artifacts["dpo"].path.endswith("round_1/model")
    ids = [{json.loads(l)["task_id"] for l in (tmp_path / "run" / "dpo" / f"round_{r}" / "pairs.jsonl")
            .read_text().splitlines()} for r in (0, 1)]
    assert not ids[0] & ids[1]  # each round draws fresh prompts
    history = artifacts["dpo"].metadata["history"]
    assert [h["round"] for h in history] == [0, 1] and all("loop_rate" in h for h in history)


@pytest.mark.slow
def test_an_interrupted_round_reuses_its_pairs_and_resumes(tmp_path, tmp_path_factory, manager, monkeypatch):
    from edgesmith.plugins.stages import stage_callback

    cfg = run_config(tmp_path, ["dpo"], init_from=str(base_model(tmp_path_factory)),
                     dpo={"steps_per_round": 4, "save_steps": 2, "batch_size": 1})

    def stop_after_first_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(stage_callback.StageCallback, "on_save", stop_after_first_save, raising=False)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, tmp_path / "run", manager)
    pairs = tmp_path / "run" / "dpo" / "round_0" / "pairs.jsonl"
    written = (pairs.stat().st_mtime_ns, pairs.read_text())
    monkeypatch.undo()
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    assert (pairs.stat().st_mtime_ns, pairs.read_text()) == written  # not sampled again
    records = [json.loads(l) for l in (tmp_path / "run" / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["resumed_from"][-12:] for r in records if r.get("event") == "resume"] == ["checkpoint-2"]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert artifacts["dpo"].path.endswith("round_0/model")


def test_a_round_trains_for_its_epochs_unless_steps_are_given():
    assert training_steps(DPOStageConfig(batch_size=8), 567) == 71
    assert training_steps(DPOStageConfig(batch_size=8, epochs=2), 567) == 142
    assert training_steps(DPOStageConfig(batch_size=8, epochs=2, steps_per_round=5), 567) == 5
    with pytest.raises(ConfigError, match="dpo.epochs"):
        DPOStageConfig(epochs=0)


@pytest.mark.slow
def test_a_retry_in_a_trace_that_ends_is_branched_only_when_repeats_are_asked_for(tmp_path_factory, manager):
    from edgesmith.plugins.loops.detector import detect_loop
    from edgesmith.plugins.stages.loop_branches import _rewrites_prefix, split_loop

    model, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    ids_of = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    # three steps that share little text with this test's fine-grained tokenizer (one with
    # the main job's BPEs would keep a search trace's shared phrasing under 24 tokens)
    a, b, c = ("Try 15>66>18: dead end, back to 15.\n", "Next arm 40 to 90 fails as well, so return.\n",
               "Arm 70 then 71* gets there.\n")
    assert min(len(ids_of(a)), len(ids_of(b))) >= 24  # long enough to count as going round again
    text = "Start at 15.\n" + a + b + a + c + "Final answer: 15,70,71"
    ids = ids_of(text)
    loop = detect_loop(ids, True)
    task = NeverEnvironment(seed=0).tasks("train", 1)[0]
    assert not loop.looping and split_loop(tokenizer, task, ids, loop, text, 1.0) is None
    branch = split_loop(tokenizer, task, ids, loop, text, 1.0, any_repeat=True)
    assert branch is not None and not branch.looping
    # cut where the re-written span starts (it may take the end of the line before along)
    assert branch.prefix.startswith("Start at 15.\n" + a + b.rstrip(".\n")) and branch.prefix.count("66>18") == 1
    assert "Try 15>66>18: dead end" in branch.repeat
    # a chosen step that retries another arm already in the prefix goes round again too
    step = lambda text: Completion(text=text, token_ids=ids_of(text), finished=True, n_tokens=0, seconds=0.0)  # noqa: E731
    assert _rewrites_prefix(branch, step(b + c))
    assert not _rewrites_prefix(branch, step(c + "Final answer: 15,70,71"))
    # the margin that pairs a loop does not apply to a retry in a trace that ended: any better
    # continuation is preferred over the retry (a wrong 0 against -0.4 here)
    env = NeverEnvironment(seed=0)
    jury = Jury.from_refs([PluginRef("verifier", 1.0), PluginRef("loop", 1.0)], "weighted_sum", manager)
    kwargs = dict(branches=2, temperature=1.0, max_new_tokens=6, round_index=0, seed=0, min_margin=1.0)
    make = lambda looping: [LoopBranch(task=task, prefix="the cat", repeat=" the cat", loop_text="x",  # noqa: E731
                                       loop_score=-0.4, looping=looping)]
    assert branch_pairs(model, tokenizer, "never", env, jury, make(True), **kwargs) == []
    assert len(branch_pairs(model, tokenizer, "never", env, jury, make(False), **kwargs)) == 1
    assert DPOStageConfig(branch_from="repeats").branch_from == "repeats"
    with pytest.raises(ConfigError, match=r"dpo.branch_from='all': accepted loops, repeats"):
        DPOStageConfig(branch_from="all")


@pytest.mark.slow
def test_a_loop_is_branched_after_its_first_repeat_when_asked(tmp_path_factory):
    from edgesmith.plugins.loops.detector import detect_loop
    from edgesmith.plugins.stages.loop_branches import _rewrites_prefix, split_loop

    _, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    ids_of = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    a, c = "Try 15>66>18: dead end, back to 15.\n", "Arm 70 then 71* gets there.\n"
    looped = "Start at 15.\n" + a * 6
    ids = ids_of(looped)
    loop = detect_loop(ids, False)
    task = NeverEnvironment(seed=0).tasks("train", 1)[0]
    first = split_loop(tokenizer, task, ids, loop, looped, -1.0)
    second = split_loop(tokenizer, task, ids, loop, looped, -1.0, at_repeat="second_repeat")
    assert first.prefix.count("66>18") == 1 and second.prefix.count("66>18") == 2
    assert second.repeat == first.repeat and second.repeat_tokens == first.repeat_tokens
    # after the first repeat the prefix holds a repeat itself: only a step that re-writes what
    # came before counts as going round again, a step to a new arm does not
    step = lambda text: Completion(text=text, token_ids=ids_of(text), finished=True, n_tokens=0, seconds=0.0)  # noqa: E731
    assert _rewrites_prefix(second, step(a)) and not _rewrites_prefix(second, step(c))
    # a completion that re-tried once and then moved on does not go round a second time
    ended = "Start at 15.\n" + a + a + c + "Final answer: 15,70,71"
    ended_ids = ids_of(ended)
    assert split_loop(tokenizer, task, ended_ids, detect_loop(ended_ids, True), ended, 1.0, any_repeat=True,
                      at_repeat="second_repeat") is None
    with pytest.raises(ConfigError, match=r"dpo.branch_at='third': accepted first_repeat, second_repeat"):
        DPOStageConfig(branch_at="third")


def test_reference_wins_ties_only_when_asked():
    from edgesmith.plugins.stages.preferences import Candidate, chosen_index

    def cands(*scores):  # the last one is the reference solution
        return [Candidate(text=str(i), score=s, by_judge={}, finished=True, greedy=False, looping=False,
                          reference=i == len(scores) - 1) for i, s in enumerate(scores)]

    tie = cands(0.0, 1.0, 1.0)  # a lucky right sample scores as high as the worked solution
    assert chosen_index(tie, 1, 2, min_margin=0.5) == 1
    assert chosen_index(tie, 1, 2, min_margin=0.5, reference_wins_ties=True) == 2
    better_sample = cands(0.0, 1.05, 1.0)  # a sample above the reference keeps the choice
    assert chosen_index(better_sample, 1, 2, min_margin=0.5, reference_wins_ties=True) == 1
    all_wrong = cands(0.0, 0.1, 1.0)  # the margin rule as before
    assert chosen_index(all_wrong, 1, 2, min_margin=0.5) == 2
    assert DPOStageConfig().reference_wins_ties is False
