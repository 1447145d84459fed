"""A labelled set of crafted generations for the doom-loop detector (see tests/test_loops_labelled.py).

Each case is ``(name, text, finished, looping)``. Unfinished texts are cut at a token budget,
the way a generation that hits ``max_new_tokens`` ends. Tokens are the detector's text
pieces (words, single digits, single marks, whitespace runs), like edgesmith's tokenizer,
which splits spaces and single digits into their own tokens; :func:`to_ids` turns a text
into token ids the same way (ids in order of first appearance).

Loops: exact repeats (a sentence, a token, a paragraph, a tool call, a code line), repeats
whose counter or one or two recycled words change every cycle, long periods (up to ~200
tokens), loops that cycle through a few phrases in random order, and the main job's looping
search traces. Not loops: numbered lists, tables (words and numbers), 40 parallel tool calls
in two formats, calls over two arguments, code, CSV, logs, recipes, poems with a refrain,
legitimate search traces and scratchpads cut by the budget, and finished generations
(never a loop, however they look).
"""

from __future__ import annotations

import random

from edgesmith.plugins.loops.detector import text_to_tokens

WORDS = ("apples pears bread cheese onions garlic rice beans lentils flour sugar salt pepper basil thyme "
         "carrots leeks milk butter eggs yogurt honey tea coffee oats nuts plums grapes lemons limes "
         "figs dates kale peas corn squash melons cherries olives capers").split()
CITIES = ("Paris London Tokyo Berlin Madrid Rome Vienna Prague Lisbon Dublin Oslo Stockholm Helsinki "
          "Warsaw Budapest Athens Istanbul Cairo Nairobi Lagos Accra Mumbai Delhi Karachi Dhaka Bangkok "
          "Hanoi Manila Jakarta Sydney Auckland Lima Bogota Santiago Quito Caracas Havana Toronto Chicago "
          "Denver Seattle Boston Miami Houston Phoenix").split()
DATES = [f"2025-0{m}-{d:02d}" for m in range(1, 10) for d in (3, 11, 19, 27)]


def cut(text: str, budget: int) -> str:
    """The first ``budget`` tokens of ``text`` (a generation that hit its token budget)."""
    return "".join(text_to_tokens(text)[:budget])


def to_ids(text: str) -> list[int]:
    """``text`` as token ids: one id per distinct piece, in order of first appearance."""
    vocab: dict[str, int] = {}
    return [vocab.setdefault(piece, len(vocab) + 3) for piece in text_to_tokens(text)]


def made_up_words(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct pronounceable words."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 3)))
        if word not in out:
            out.append(word)
    return out


def search_trace(seed: int, difficulty: int, loop_arm: int | None = None) -> tuple[str, str]:
    """A trace of the main job's ``search`` task: (prompt-free legitimate trace, looping trace).

    The legitimate trace tries the arms of a star graph once each until it reaches the
    target; the looping one goes on trying arm ``loop_arm`` again after the first tries.
    """
    rng = random.Random(seed)
    degree, arm_length = 3 + difficulty, 1 + difficulty
    labels = rng.sample(range(10, 100), degree * arm_length + 1)
    centre, rest = labels[0], labels[1:]
    arms = [[centre] + rest[a * arm_length:(a + 1) * arm_length] for a in range(degree)]
    goal = degree - 1
    lines = [f"Start at {centre}."]
    for a in range(degree):
        walk = ">".join(str(v) for v in arms[a])
        if a == goal:
            lines.append(f"Try {walk}: reached {arms[a][-1]}.")
            break
        lines.append(f"Try {walk}: dead end, back to {centre}.")
    legit = "\n".join(lines) + "\nFinal answer: " + ",".join(str(v) for v in arms[goal])
    arm = ">".join(str(v) for v in arms[loop_arm or 0])
    looping = "\n".join(lines[:2]) + "\n" + f"Try {arm}: dead end, back to {centre}.\n" * 40
    return legit, looping


def markdown_table(rows: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = ["| town | population | main good |", "| --- | --- | --- |"]
    lines += [f"| {rng.choice(WORDS).title()}ton | {rng.randint(1, 99) * 100} | {rng.choice(WORDS)} |"
              for _ in range(rows)]
    return "\n".join(lines) + "\n"


def _stochastic(phrases: list[str], n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(phrases) for _ in range(n))


def loops() -> list[tuple[str, str, bool]]:
    """``(name, text, finished)`` of generations that loop (all unfinished)."""
    long_par = ("To find the path I first list every edge of the graph, then I look for the node that has "
                "no outgoing edge, because that node must be the end of an arm, and from there I walk back "
                "towards the centre one edge at a time while writing each node down. ")
    longer = long_par + ("When the walk reaches the centre the path is complete, and I reverse the list "
                         "of nodes so that it starts at the centre and ends at the target node. ")
    _, trace_loop = search_trace(1, 1)
    _, trace_loop3 = search_trace(2, 3)
    legit_then_loop, _ = search_trace(3, 2)
    first_lines = legit_then_loop.split("\n")[:3]
    centre = first_lines[0].split()[-1].rstrip(".")
    rest = [line for line in legit_then_loop.split("\n") if line.startswith("Try")]
    two_arms = rest[0] + "\n" + rest[1].replace("reached", "dead end, back to").split(": ")[0] + \
        f": dead end, back to {centre}.\n"
    cases = [
        ("sentence repeated", "Let me think about the path. " + "Wait, let me check the path again. " * 20),
        ("single token", "The answer is" + "!" * 100),
        ("drifting counter", "".join(f"Step {i}: add one to the counter and check whether the counter is still "
                                     f"below the limit, then go back to the start. " for i in range(1, 40))),
        ("paragraph repeated", ("First I list the edges. Then I look for the target node among the leaves, "
                                "and I walk back to the centre one edge at a time.\n") * 8),
        ("N. kiwis", cut("I will count the fruit.\n" + "".join(f"{i}. kiwis\n" for i in range(1, 80)), 192)),
        ("step counter, 192 tokens", cut("".join(f"Step {i}: add one to the counter and check it again.\n"
                                                 for i in range(1, 40)), 192)),
        ("search trace repeating one arm", cut(trace_loop, 192)),
        ("search trace repeating one long arm", cut(trace_loop3, 192)),
        ("search trace alternating two arms", cut(f"Start at {centre}.\n" + two_arms * 10, 192)),
        ("search trace: two tries, then one repeated",
         cut("\n".join(first_lines) + "\n" + (rest[0] + "\n") * 12, 192)),
        ("search trace cycling three arms", cut(f"Start at {centre}.\n" + (two_arms + first_lines[1] + "\n") * 8,
                                                400)),
        ("long paragraph x3 (period ~108)", cut(long_par * 6, 330)),
        ("long paragraph x2.6 (period ~170)", cut(longer * 5, 450)),
        ("long near-repeat with attempt counter",
         cut("".join(f"Attempt {i}. " + long_par for i in range(1, 9)), 500)),
        ("alternating branches", "Let me check the left branch again. Let me check the right branch again. " * 12),
        ("three phrases in random order",
         cut(_stochastic(["Wait, that is not right. ", "Let me recompute the total. ", "Hmm, let me check. "],
                         80, 1), 256)),
        ("one recycled word changes", cut(_stochastic([f"Wait, {w} is wrong, so I start over. "
                                                       for w in ("this", "that", "it", "the sum")], 60, 2), 256)),
        ("retry counter and a second numeral",
         cut("".join(f"Retry {i}: request failed with status 503, waiting {i % 3 + 1} seconds.\n"
                     for i in range(1, 40)), 256)),
        ("same pythonic tool call", cut("[" + 'get_weather(city="Paris"), ' * 60, 256)),
        ("same JSON tool call", cut("[" + '{"name": "get_weather", "arguments": {"city": "Paris"}}, ' * 30, 320)),
        ("code line repeated", cut("def greet():\n" + "    print('hello')\n" * 60, 256)),
        ("markdown separator repeated", cut("| name | value |\n" + "| --- | --- |\n" * 40, 256)),
        ("table ending in one repeated row", cut(markdown_table(6, 3) + "| Riceton | 4200 | figs |\n" * 20, 320)),
        ("counter twice per line", cut("".join(f"Step {i}: I will now do step {i} again.\n"
                                               for i in range(1, 60)), 256)),
        ("prose then a sentence loop",
         cut(" ".join(made_up_words(60, 5)) + ". " + "So the answer must be checked once more. " * 40, 400)),
        ("I have N kiwis", cut("".join(f"I have {i} kiwis. " for i in range(1, 90)), 256)),
        ("search line with attempt counter",
         cut("".join(f"Try 15>68>31: dead end, back to 15. (attempt {i})\n" for i in range(1, 30)), 256)),
        ("long near-repeat, period ~95, counter",
         cut("".join(f"Round {i}: " + long_par for i in range(1, 12)), 600)),
        ("parallel calls recycling three calls",
         cut("[" + _stochastic([f'get_weather(city="{c}"), ' for c in ("Paris", "Rome", "Oslo")], 80, 4), 320)),
        ("numbered list recycling three items",
         cut("".join(f"{i}. {('apples', 'pears', 'plums')[i % 3]}\n" for i in range(1, 90)), 256)),
        ("punctuation alternates", cut(_stochastic(["Hmm. Let me recompute the total! ",
                                                    "Hmm. Let me recompute the total? "], 40, 6), 256)),
        ("word repeated", "I think that " + "the " * 60),
        ("equation repeated", cut("7 + 5 = 12. " * 40, 192)),
        ("JSON records with a counter", cut("[" + "".join(f'{{"id": {i}, "name": "kiwi"}}, ' for i in range(1, 60)),
                                           320)),
        ("Wait, wait, wait", cut("Let me see. " + "Wait, " * 80, 192)),
        ("sampled answer loop", cut(_stochastic(["The answer is 42. ", "So the answer is 42. ",
                                                 "Therefore the answer is 42. "], 50, 7), 256)),
    ]
    return [(name, text, False) for name, text in cases]


def not_loops() -> list[tuple[str, str, bool]]:
    """``(name, text, finished)`` of generations that do not loop."""
    rng = random.Random(11)
    words = made_up_words(120, 1)
    legit1, loop1 = search_trace(1, 1)
    legit5, _ = search_trace(4, 5)
    legit3, _ = search_trace(5, 3)
    scratch = ["Start with 7."]
    value = 7
    for _ in range(40):
        op, x = rng.choice("+-*"), rng.randint(2, 9)
        new = value + x if op == "+" else value - x if op == "-" else value * x
        if abs(new) > 5000:
            op, new = "-", value - x
        scratch.append(f"{value} {op} {x} = {new}")
        value = new
    code_class = '''class Inventory:
    """Keeps stock counts per item."""

    def __init__(self, items=None):
        self.items = dict(items or {})

    def add(self, name, count=1):
        self.items[name] = self.items.get(name, 0) + count
        return self.items[name]

    def remove(self, name, count=1):
        if self.items.get(name, 0) < count:
            raise ValueError(f"not enough {name}")
        self.items[name] -= count

    def total(self):
        return sum(self.items.values())

    def report(self):
        lines = [f"{name}: {count}" for name, count in sorted(self.items.items())]
        return "\\n".join(lines)
'''
    cases = [
        ("numbered list", "Shopping list:\n" + "".join(f"{i}. {WORDS[i % len(WORDS)]}\n" for i in range(1, 41)), False),
        ("markdown table", markdown_table(30), False),
        ("prose", " ".join(f"{random.Random(i).choice(WORDS)} {random.Random(i + 1000).choice(WORDS)} and"
                           for i in range(80)), False),
        ("three repeats only", "I computed 3 * 7 = 21 and 21 + 4 = 25. " + "Let me check again. " * 3, False),
        ("40 parallel JSON tool calls", "[" + ", ".join(f'{{"name": "get_weather", "arguments": {{"city": "{c}"}}}}'
                                                        for c in CITIES[:40]) + ", ", False),
        ("40 parallel JSON tool calls, cut", cut("[" + ", ".join(
            f'{{"name": "get_weather", "arguments": {{"city": "{c}", "unit": "celsius"}}}}' for c in CITIES[:40]),
            384), False),
        ("40 parallel pythonic tool calls", "[" + ", ".join(f'get_weather(city="{c}")' for c in CITIES[:40]), False),
        ("parallel calls over city and date", cut("[" + ", ".join(
            f'get_forecast(city="{c}", date="{d}")' for c, d in zip(CITIES, DATES)), 400), False),
        ("parallel calls, three metrics per city", cut("[" + ", ".join(
            f'get_stat(city="{c}", metric="{m}")' for c in CITIES[:14] for m in ("rain", "wind", "heat")), 400),
         False),
        ("numeric table n, n^2, n^3", cut("| n | n^2 | n^3 |\n|---|---|---|\n" + "".join(
            f"| {n} | {n * n} | {n ** 3} |\n" for n in range(1, 41)), 400), False),
        ("times table", cut("".join(f"7 x {n} = {7 * n}\n" for n in range(1, 41)), 256), False),
        ("code: a class", code_class, False),
        ("code: a dict of 40 entries", "PRICES = {\n" + "".join(
            f'    "{w}": {rng.randint(1, 999) / 100},\n' for w in words[:40]) + "}\n", False),
        ("code: test functions", "".join(
            f"def test_{a}_{b}():\n    assert {a}({i}) == {b}({i * 3 % 7})\n\n"
            for i, (a, b) in enumerate(zip(words[40:60], words[60:80]))), False),
        ("CSV rows", cut("name,age,city,score\n" + "".join(
            f"{w.title()},{rng.randint(18, 80)},{c},{rng.randint(0, 100)}\n" for w, c in zip(words, CITIES)), 400),
         False),
        ("recipe steps", "1. Preheat the oven to 200 degrees.\n2. Whisk the eggs with the sugar until pale.\n"
                         "3. Fold in the flour and a pinch of salt.\n4. Melt the butter and stir it in.\n"
                         "5. Pour the batter into a greased tin.\n6. Bake for 25 minutes until golden.\n"
                         "7. Let it cool on a rack before slicing.\n8. Dust with icing sugar and serve.\n", False),
        ("search trace, finished", "Start at 15.\nTry 15>68>31: dead end, back to 15.\nTry 15>80>70: reached 70.\n"
                                   "Final answer: 15,80,70", True),
        ("search trace, generated, finished", legit1, True),
        ("looping search trace that finished", loop1, True),
        ("search trace cut by the budget (difficulty 5)", cut(legit5, 192), False),
        ("search trace cut by the budget (difficulty 3)", cut(legit3, 192), False),
        ("arithmetic scratchpad cut by the budget", cut("\n".join(scratch), 192), False),
        ("star path reasoning cut", cut("Node 47 is the end of one arm. Walking back along the edges that lead "
                                        "into it: 47 <- 85 <- 23 <- 61 <- 15.\nEdge 15-61 exists.\nEdge 61-23 "
                                        "exists.\nEdge 23-85 exists.\nEdge 85-47 exists.\nSo the path is "
                                        "15 -> 61 -> 23 -> 85 -> 47.\nFinal", 192), False),
        ("a long block twice", ("The report covers the north and south districts, their water use, the new "
                                "pumps installed this year and the repairs still planned for the winter. ") * 2,
         False),
        ("poem with a refrain", "The river runs past the mill,\nthe miller sleeps on the hill.\n"
                                "Row, row, the water is slow,\nrow, row, wherever we go.\n"
                                "The wheel turns under the moon,\nthe owls will be singing soon.\n"
                                "Row, row, the water is slow,\nrow, row, wherever we go.\n"
                                "At dawn the baker comes by,\nwith flour as white as the sky.\n", False),
        ("bullet list with one prefix", "".join(f"- Check the {w} before leaving.\n" for w in words[80:110]), False),
        ("log lines", cut("".join(f"2025-03-{1 + i % 28:02d} 10:{i % 60:02d}:{(i * 7) % 60:02d} INFO "
                                  f"{w} finished in {rng.randint(10, 999)} ms\n" for i, w in enumerate(words)), 400),
         False),
        ("URLs", "".join(f"https://example.org/{w}/{rng.randint(100, 999)}\n" for w in words[:30]), False),
        ("JSON records", cut("[" + "".join(f'{{"name": "{w}", "age": {rng.randint(18, 90)}, '
                                           f'"score": {rng.randint(0, 100)}}}, ' for w in words), 400), False),
        ("short repetition", "ok ok ok", False),
        ("HTML list", "<ul>\n" + "".join(f"  <li>{c}</li>\n" for c in CITIES[:30]) + "</ul>\n", False),
        ("SQL inserts", cut("".join(f"INSERT INTO people VALUES ({i}, '{w}', {rng.randint(18, 90)});\n"
                                    for i, w in enumerate(words, 1)), 400), False),
        ("100 made-up words, numbered", cut("".join(f"{i}. {w}\n" for i, w in enumerate(words[:100], 1)), 500),
         False),
        ("random numeric table", cut("| a | b | c |\n" + "".join(
            f"| {rng.randint(0, 99)} | {rng.randint(0, 99)} | {rng.randint(0, 9)} |\n" for _ in range(60)), 400),
         False),
        ("table with a constant column", cut("| name | active |\n" + "".join(
            f"| {w.title()} | yes |\n" for w in words[:50]), 300), False),
    ]
    return cases


def labelled_cases() -> list[tuple[str, str, bool, bool]]:
    """``(name, text, finished, looping)`` for every case."""
    return ([(name, text, finished, True) for name, text, finished in loops()]
            + [(name, text, finished, False) for name, text, finished in not_loops()])
