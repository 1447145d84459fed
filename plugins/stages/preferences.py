"""On-policy preference pairs: k sampled + 1 greedy completion per prompt, judged by a jury.

The best-scored candidate becomes ``chosen``, the worst ``rejected`` (``rejected="worst"``), or
each distinct candidate scoring ``min_margin`` below the best is paired with it
(``rejected="each"``). The second matters when the worst candidate is always the same kind of
failure: on the search task the worst is the greedy loop, and pairs against loops alone
taught the model to quit after the first dead end ("Final answer" where "Try" was
rejected), accuracy 37.5% -> 29% with loops gone; pairing the finished wrong answers too
rejects quitting as well as looping.

With ``loop_branches`` > 0, every looping candidate also yields a pair at the point where
its loop starts (:mod:`.loop_branches`): the policy continues the text up to the loop's
first repeat, and the best continuation is preferred over the repeat itself.

A prompt whose best and worst differ by less than ``min_margin`` is dropped as a tie: when
every candidate is wrong, the small-weight judges (length) would otherwise decide, and
"prefer the shorter wrong answer" teaches dropping the second of two parallel tool calls. Loops get the loop judge's
penalty, so they end up rejected.

When no candidate is good (the best still scores ``min_margin`` below the task's reference
solution, judged by the same jury), the reference solution becomes ``chosen``
(``reference_chosen``): a model that loops on a prompt even when sampled has no on-policy
example of finishing it, which is exactly where the preference is most needed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgesmith.core.environment import Environment, Task
from edgesmith.core.jsonl import read_jsonl

#: how rejected completions are picked: the worst one, each one below the chosen's margin, or
#: none (no whole-completion pairs: only loop-branch pairs)
REJECTED = ("worst", "each", "none")


@dataclass
class Candidate:
    """One completion of a prompt with the jury's verdict."""

    text: str
    score: float
    by_judge: dict[str, float]
    finished: bool
    greedy: bool
    looping: bool = False
    reference: bool = False  # the task's reference solution, not a sample of the policy


@dataclass
class PreferencePair:
    """A prompt with its best (chosen) and worst (rejected) candidate and every candidate's score."""

    round: int
    environment: str
    task_id: str
    prompt: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float
    candidates: list[Candidate] = field(default_factory=list)
    prefix: str = ""  # a loop branch's shared start (already part of ``prompt``); "" for whole completions
    # whether the policy ended right after each side (EOS follows it in training, preference_tokens.py)
    chosen_ends: bool = True
    rejected_ends: bool = True
    correction: bool = False  # an expert's correction at the rejected side's first mistake (.corrections)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreferencePair:
        data = dict(data)
        data["candidates"] = [Candidate(**c) for c in data.get("candidates", [])]
        return cls(**data)


@dataclass
class PreferenceRound:
    """What one round of sampling and judging gave."""

    pairs: list[PreferencePair]
    ties: int
    prompts: int
    candidates: int
    loops: int

    @property
    def loop_rate(self) -> float:
        return self.loops / self.candidates if self.candidates else 0.0


def prompt_text(tokenizer: Any, task: Task) -> str:
    """The task's prompt as the chat template renders it, ending with the assistant header."""
    return tokenizer.apply_chat_template(task.messages, tools=task.tools, add_generation_prompt=True,
                                         tokenize=False)


def build_preferences(model: Any, tokenizer: Any, tasks: list[tuple[str, Task]],
                      environments: dict[str, Environment], jury: Any, *, samples: int, temperature: float,
                      max_new_tokens: int, round_index: int, seed: int, min_margin: float = 0.0,
                      reference_chosen: bool = False, rejected: str = "worst",
                      loop_branches: int = 0, branch_chosen: str = "step",
                      branch_from: str = "loops", branch_correct_only: bool = False,
                      reference_wins_ties: bool = False, rejected_cut: str = "none",
                      branch_at: str = "first_repeat", corrections: str = "none",
                      corrections_at: str = "first") -> PreferenceRound:
    """Samples, judges and pairs; the greedy completion is always one of the candidates.

    ``min_margin``: the least score difference between chosen and rejected (smaller is a tie).
    ``reference_chosen``: the task's solution is judged too and chosen when it beats every
    sample by at least ``min_margin`` (never counted as a loop or a sample); with
    ``reference_wins_ties`` also when no sample beats it (see :func:`chosen_index`).
    ``rejected``: ``worst`` (one pair per prompt), ``each`` (one pair per distinct candidate
    text at least ``min_margin`` below the chosen; the candidates are stored with the first)
    or ``none`` (no whole-completion pairs; only loop-branch pairs).
    ``loop_branches``: continuations sampled at each distinct looping candidate's first repeat
    (0: none); each loop a continuation beats by ``min_margin`` adds a branch pair, whose
    chosen side is one step or the rest of the best continuation (``branch_chosen``).
    ``branch_from``: ``loops`` (only looping candidates are branched) or ``repeats`` (also
    every candidate that re-writes a step once and still ends). ``branch_at``: ``first_repeat``
    (branch before the retry) or ``second_repeat`` (after it, where a loop goes round again).
    ``branch_correct_only``: only
    continuations that end with a verified right answer can be a branch pair's chosen side.
    ``rejected_cut``: ``none`` (a whole-completion pair's rejected side is the whole text) or
    ``parting`` (only its first token that differs from the chosen side; :mod:`.parting`).
    ``corrections``: ``none``, or ``decision``/``rest``: each distinct sampled or greedy
    candidate the environment's expert finds a mistake in also gives a correction pair, tie
    or not (:mod:`.corrections`); ``corrections_at``: ``first`` (its first mistake) or ``every``.
    """
    from .corrections import CORRECTIONS, correction_pairs
    from .parting import REJECTED_CUT, cut_at_parting

    if rejected not in REJECTED:
        raise ValueError(f"rejected={rejected!r}: expected one of {', '.join(REJECTED)}")
    if rejected_cut not in REJECTED_CUT:
        raise ValueError(f"rejected_cut={rejected_cut!r}: expected one of {', '.join(REJECTED_CUT)}")
    if corrections not in CORRECTIONS:
        raise ValueError(f"corrections={corrections!r}: expected one of {', '.join(CORRECTIONS)}")
    from edgesmith.plugins.evaluation.rollout import generate_completions
    from edgesmith.plugins.loops.detector import detect_loop
    from edgesmith.plugins.loops.numerals import numeral_token_ids

    from .loop_branches import branch_pairs, split_loop

    numerals = numeral_token_ids(tokenizer)

    by_env: dict[str, list[Task]] = {}
    for env_name, task in tasks:
        by_env.setdefault(env_name, []).append(task)
    pairs: list[PreferencePair] = []
    ties = n_candidates = loops = 0
    for env_name, env_tasks in by_env.items():
        sampled = generate_completions(model, tokenizer, env_tasks, n_samples=samples, temperature=temperature,
                                       max_new_tokens=max_new_tokens, seed=seed + round_index)
        greedy = generate_completions(model, tokenizer, env_tasks, n_samples=1, temperature=0.0,
                                      max_new_tokens=max_new_tokens, seed=seed + round_index)
        to_branch: list = []  # looping candidates to continue from their first repeat
        for task, samples_of_task, greedy_of_task in zip(env_tasks, sampled, greedy):
            branched: set[str] = set()
            completions = [*samples_of_task, greedy_of_task[0]]
            texts = [c.text for c in completions]
            finished = [bool(c.finished) for c in completions]
            with_reference = reference_chosen and bool(task.solution)
            if with_reference:  # judged beside the samples, so the scores are comparable
                texts.append(task.solution)
                finished.append(True)
            verdict = jury.score(task, texts, environments[env_name], finished)
            candidates = []
            for i, c in enumerate(completions):
                loop = (detect_loop(list(c.token_ids), c.finished, numeral_ids=numerals)
                        if c.token_ids is not None else detect_loop(c.text, c.finished))
                loops += loop.looping
                if loop_branches and c.token_ids is not None and c.text not in branched:
                    branch = split_loop(tokenizer, task, list(c.token_ids), loop, c.text, verdict.scores[i],
                                        any_repeat=branch_from == "repeats", at_repeat=branch_at)
                    if branch is not None:
                        branched.add(c.text)
                        to_branch.append(branch)
                candidates.append(Candidate(text=c.text, score=verdict.scores[i],
                                            by_judge={k: v[i] for k, v in verdict.by_judge.items()},
                                            finished=finished[i], greedy=i == len(completions) - 1,
                                            looping=loop.looping))
            n_candidates += len(candidates)
            prompt = prompt_text(tokenizer, task)
            if corrections != "none":
                seen_fixes = set()
                for i in _distinct(candidates):
                    for fix in correction_pairs(tokenizer, environments[env_name], env_name, task, prompt,
                                                candidates[i].text, candidates[i].finished, candidates[i].score,
                                                round_index, corrections, corrections_at):
                        if (fix.prompt, fix.chosen, fix.rejected) not in seen_fixes:  # candidates share starts
                            seen_fixes.add((fix.prompt, fix.chosen, fix.rejected))
                            pairs.append(fix)
            best = max(range(len(candidates)), key=lambda i: candidates[i].score)
            worst = min(range(len(candidates)), key=lambda i: candidates[i].score)
            if with_reference:
                r = len(candidates)
                candidates.append(Candidate(text=task.solution, score=verdict.scores[r],
                                            by_judge={k: v[r] for k, v in verdict.by_judge.items()},
                                            finished=True, greedy=False, reference=True))
                best = chosen_index(candidates, best, r, min_margin, reference_wins_ties)
            if candidates[best].score - candidates[worst].score < max(min_margin, 1e-9):
                ties += 1
                continue
            if rejected == "each":
                losers = _distinct_losers(candidates, best, min_margin)
            else:
                losers = [worst] if rejected == "worst" else []
            for i, loser in enumerate(losers):
                pair = PreferencePair(
                    round=round_index, environment=env_name, task_id=task.id, prompt=prompt,
                    chosen=candidates[best].text, rejected=candidates[loser].text,
                    chosen_score=candidates[best].score, rejected_score=candidates[loser].score,
                    candidates=candidates if i == 0 else [], chosen_ends=candidates[best].finished,
                    rejected_ends=candidates[loser].finished)
                pair = cut_at_parting(tokenizer, pair) if rejected_cut == "parting" else pair
                if pair is not None:
                    pairs.append(pair)
        pairs.extend(branch_pairs(model, tokenizer, env_name, environments[env_name], jury, to_branch,
                                  branches=loop_branches, temperature=temperature, max_new_tokens=max_new_tokens,
                                  round_index=round_index, seed=seed, min_margin=min_margin,
                                  chosen=branch_chosen, correct_only=branch_correct_only))
    return PreferenceRound(pairs=pairs, ties=ties, prompts=len(tasks), candidates=n_candidates, loops=loops)


def chosen_index(candidates: list[Candidate], best: int, reference: int, min_margin: float,
                 reference_wins_ties: bool = False) -> int:
    """The chosen side: the best sample, or the reference solution when it beats that sample by
    ``min_margin``, or, with ``reference_wins_ties``, when no sample scores above it.

    Why ties matter: a sample that reaches the right answer by a lucky guess (the search task's
    arm tried out of order that happens to reach the target) scores as high as the worked
    solution, and is shorter. In run base16, 62 of the 105 whole-completion pairs chose such a
    sample and 42 the reference (``scripts/chosen_sides.py``): the chosen side (and the SFT
    term on it) taught guessing.
    """
    gap = candidates[reference].score - candidates[best].score
    if gap >= max(min_margin, 1e-9) or (reference_wins_ties and gap >= -1e-9):
        return reference
    return best


def _distinct(candidates: list[Candidate]) -> list[int]:
    """The first candidate of each distinct text."""
    seen: dict[str, int] = {}
    for i, c in enumerate(candidates):
        seen.setdefault(c.text, i)
    return list(seen.values())


def _distinct_losers(candidates: list[Candidate], best: int, min_margin: float) -> list[int]:
    """Candidates at least ``min_margin`` below the best, one per distinct text, worst first."""
    threshold = candidates[best].score - max(min_margin, 1e-9)
    seen: set[str] = set()
    losers = []
    for i in sorted(range(len(candidates)), key=lambda i: candidates[i].score):
        if candidates[i].score <= threshold and candidates[i].text not in seen:
            seen.add(candidates[i].text)
            losers.append(i)
    return losers


def write_pairs(path: Path, result: PreferenceRound) -> None:
    """Pairs as JSONL plus a summary (a resumed round reuses them instead of sampling again)."""
    summary = {"ties": result.ties, "prompts": result.prompts, "candidates": result.candidates,
               "loops": result.loops, "pairs": len(result.pairs)}
    path.with_name("summary.json").write_text(json.dumps(summary, indent=2))
    tmp = path.with_suffix(".partial")
    with open(tmp, "w") as f:
        for pair in result.pairs:
            f.write(pair.to_json() + "\n")
    tmp.replace(path)  # the pairs file appears last: its presence means the round's data is complete


def read_pairs(path: Path) -> PreferenceRound:
    pairs = [PreferencePair.from_dict(row) for _, row in read_jsonl(path, "one preference pair per line (dpo stage)")]
    summary = json.loads(path.with_name("summary.json").read_text())
    return PreferenceRound(pairs=pairs, ties=summary["ties"], prompts=summary["prompts"],
                           candidates=summary["candidates"], loops=summary["loops"])
