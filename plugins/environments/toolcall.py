"""The ``toolcall`` environment: synthetic function libraries and requests, scored by AST matching.

Each task offers a library of functions (JSON-schema parameters of every common kind:
integer, number, string, enum, boolean, array, optional parameters) and a request that
needs one call, several parallel calls, or no call at all (small talk, or a request no
offered function can serve). The completion's tool calls are parsed with the configured
tool-call format and matched against the expected calls by BFCL's AST rules
(:func:`edgesmith.plugins.toolcall.ast_checker.check_calls`): names, required
parameters, types (int accepted for float), allowed values, omitted optional parameters,
parallel calls in any order, and no call when none is expected.

Options: ``format`` (a registered tool-call format, default ``pythonic``) and ``mix``
(weights of single/parallel/none requests, default 0.5/0.3/0.2).
Difficulty 1-5: the library holds ``2 + 2d`` functions (of 12); parallel requests have
2 to ``1 + d`` calls (at least 2); from 2, optional parameters are used more often.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from edgesmith.core.environment import Task, Verification
from edgesmith.core.errors import ConfigError
from edgesmith.core.toolcall import ToolCall
from edgesmith.plugins.world import values

from .synthetic import GeneratedEnvironment

CURRENCIES = ["USD", "EUR", "JPY", "GBP", "CHF", "INR"]
LANGUAGES = ["French", "German", "Spanish", "Japanese", "Swahili", "Portuguese"]
CATEGORIES = ["books", "electronics", "garden", "kitchen", "sports", "toys"]
SMALL_TALK = [
    "Tell me a fun fact about {}.",
    "How are you today? I was thinking about {}.",
    "Write a two-line poem about {}.",
    "What do you know about {}?",
    "Thanks, that was helpful! Now I want to learn about {}.",
    "Explain in one sentence what {} means.",
]
NO_CALL_SOLUTION = "None of the available tools is needed for this, so I answer directly without calling one."
UNSERVED_SOLUTION = "None of the available tools can do this, so I cannot carry out the request."


@dataclass
class Spec:
    """A synthetic function: its schema, how to draw arguments, how a user asks for a call."""

    name: str
    description: str
    parameters: dict[str, dict[str, Any]]
    required: list[str]
    draw: Callable[[random.Random, float], dict[str, Any]]  # (rng, p_optional) -> arguments
    ask: Callable[[dict[str, Any]], str]

    def tool(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": {"type": "object", "properties": self.parameters, "required": self.required}}}


# Free values (names, places, phrases, tickers) come from edgesmith.plugins.world.values: open
# spaces split between train and eval, so the model must copy them from the request. Numbers
# are written in the request exactly as the call writes them (str of the value).

def _opt(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def _weather(rng, p):
    args = {"city": values.city(rng)}
    if _opt(rng, p):
        args["unit"] = rng.choice(["celsius", "fahrenheit"])
    if _opt(rng, p):
        args["days"] = rng.randint(2, 14)
    return args


def _ask_weather(a):
    s = f"what's the weather in {a['city']}"
    if "days" in a:
        s += f" for the next {a['days']} days"
    if "unit" in a:
        s += f", in {a['unit']}"
    return s


def _alarm(rng, p):
    args = {"hour": rng.randint(0, 23), "minute": rng.randint(0, 59)}
    if _opt(rng, p):
        args["label"] = values.words(rng, 1, 2)
    if _opt(rng, p):
        args["repeat_daily"] = rng.random() < 0.5
    return args


def _ask_alarm(a):
    s = f"set an alarm for {a['hour']}:{a['minute']:02d}"
    if "label" in a:
        s += f" labelled \"{a['label']}\""
    if "repeat_daily" in a:
        s += " that repeats every day" if a["repeat_daily"] else " that rings only once"
    return s


def _products(rng, p):
    args = {"query": values.words(rng, 1, 3)}
    if _opt(rng, p):
        args["max_price"] = float(rng.randint(5, 500))
    if _opt(rng, p):
        args["categories"] = sorted(rng.sample(CATEGORIES, 2))
    if _opt(rng, p):
        args["in_stock_only"] = True
    return args


def _ask_products(a):
    s = f"search the shop for \"{a['query']}\""
    if "max_price" in a:
        s += f" under {a['max_price']:g} dollars"
    if "categories" in a:
        s += f" in the categories {a['categories'][0]} and {a['categories'][1]}"
    if a.get("in_stock_only"):
        s += ", only items in stock"
    return s


def _message(rng, p):
    args = {"recipient": values.person(rng), "text": values.words(rng, 2, 4)}
    if _opt(rng, p):
        args["urgent"] = True
    return args


def _music(rng, p):
    args = {"artist": values.full_name(rng)}
    if _opt(rng, p):
        args["shuffle"] = rng.random() < 0.5
    if _opt(rng, p):
        args["volume"] = rng.randint(1, 100)
    return args


def _ask_music(a):
    s = f"play some {a['artist']}"
    if "shuffle" in a:
        s += " on shuffle" if a["shuffle"] else " in album order, no shuffle"
    if "volume" in a:
        s += f" at volume {a['volume']}"
    return s


def _event(rng, p):
    args = {"title": values.words(rng, 1, 3),
            "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
    if _opt(rng, p):
        args["attendees"] = sorted([values.person(rng), values.person(rng)])
    return args


def _ask_event(a):
    s = f"create a calendar event \"{a['title']}\" on {a['date']}"
    if "attendees" in a:
        s += f" with {a['attendees'][0]} and {a['attendees'][1]}"
    return s


def _thermostat(rng, p):
    args = {"temperature": rng.randint(30, 57) / 2}
    if _opt(rng, p):
        args["mode"] = rng.choice(["heat", "cool", "auto"])
    return args


def _ask_thermostat(a):
    s = f"set the thermostat to {a['temperature']:g} degrees"
    if "mode" in a:
        s += f" in {a['mode']} mode"
    return s


def _stock(rng, p):
    args = {"symbol": values.symbol(rng)}
    if _opt(rng, p):
        args["exchange"] = rng.choice(["NYSE", "NASDAQ", "LSE"])
    return args


def _ask_stock(a):
    return f"get the stock price of {a['symbol']}" + (f" on the {a['exchange']}" if "exchange" in a else "")


def _str(desc: str) -> dict[str, Any]:
    return {"type": "string", "description": desc}


SPECS: list[Spec] = [
    Spec("get_weather", "Current weather and forecast for a city.",
         {"city": _str("City name"), "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
          "days": {"type": "integer", "description": "Forecast length in days"}},
         ["city"], _weather, _ask_weather),
    Spec("convert_currency", "Converts an amount between currencies.",
         {"amount": {"type": "number"}, "from_currency": {"type": "string", "enum": CURRENCIES},
          "to_currency": {"type": "string", "enum": CURRENCIES}},
         ["amount", "from_currency", "to_currency"],
         lambda r, p: dict(zip(["amount", "from_currency", "to_currency"],
                               [r.randint(100, 500000) / 100, *r.sample(CURRENCIES, 2)])),
         lambda a: f"convert {a['amount']:g} {a['from_currency']} to {a['to_currency']}"),
    Spec("set_alarm", "Sets an alarm.",
         {"hour": {"type": "integer"}, "minute": {"type": "integer"}, "label": _str("Alarm label"),
          "repeat_daily": {"type": "boolean"}},
         ["hour", "minute"], _alarm, _ask_alarm),
    Spec("send_message", "Sends a text message to a contact.",
         {"recipient": _str("Contact name"), "text": _str("Message text"), "urgent": {"type": "boolean"}},
         ["recipient", "text"], _message,
         lambda a: f"text {a['recipient']} \"{a['text']}\"" + (" and mark it urgent" if a.get("urgent") else "")),
    Spec("search_products", "Searches the online shop.",
         {"query": _str("What to look for"), "max_price": {"type": "number"},
          "categories": {"type": "array", "items": {"type": "string", "enum": CATEGORIES}},
          "in_stock_only": {"type": "boolean"}},
         ["query"], _products, _ask_products),
    Spec("calculate_bmi", "Body mass index from weight and height.",
         {"weight_kg": {"type": "number"}, "height_m": {"type": "number"}}, ["weight_kg", "height_m"],
         lambda r, p: {"weight_kg": float(r.randint(40, 150)), "height_m": r.randint(140, 210) / 100},
         lambda a: f"compute the BMI for {a['weight_kg']:g} kg and {a['height_m']:g} m"),
    Spec("play_music", "Plays music by an artist.",
         {"artist": _str("Artist name"), "shuffle": {"type": "boolean"},
          "volume": {"type": "integer", "description": "0-100"}},
         ["artist"], _music, _ask_music),
    Spec("create_event", "Creates a calendar event.",
         {"title": _str("Event title"), "date": _str("YYYY-MM-DD"),
          "attendees": {"type": "array", "items": {"type": "string"}}},
         ["title", "date"], _event, _ask_event),
    Spec("translate_text", "Translates text into another language.",
         {"text": _str("Text to translate"), "target_language": {"type": "string", "enum": LANGUAGES}},
         ["text", "target_language"],
         lambda r, p: {"text": values.words(r, 2, 4),
                       "target_language": r.choice(LANGUAGES)},
         lambda a: f"translate \"{a['text']}\" into {a['target_language']}"),
    Spec("get_stock_price", "Latest stock price of a ticker symbol.",
         {"symbol": _str("Ticker"), "exchange": {"type": "string", "enum": ["NYSE", "NASDAQ", "LSE"]}},
         ["symbol"], _stock, _ask_stock),
    Spec("set_thermostat", "Sets the home thermostat.",
         {"temperature": {"type": "number", "description": "Degrees Celsius"},
          "mode": {"type": "string", "enum": ["heat", "cool", "auto"]}},
         ["temperature"], _thermostat, _ask_thermostat),
    Spec("book_table", "Books a restaurant table.",
         {"restaurant": _str("Restaurant name"), "party_size": {"type": "integer"}, "time": _str("HH:MM")},
         ["restaurant", "party_size", "time"],
         lambda r, p: {"restaurant": values.city(r), "party_size": r.randint(2, 20),
                       "time": f"{r.randint(11, 23)}:{r.choice(['00', '15', '30', '45'])}"},
         lambda a: f"book a table for {a['party_size']} at {a['restaurant']} at {a['time']}"),
]
SPEC_BY_NAME = {s.name: s for s in SPECS}


def expected_entry(spec: Spec, args: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """BFCL's possible-answer layout for one call: given values, and "" for omissible optionals."""
    allowed = {name: [value] for name, value in args.items()}
    for name in spec.parameters:
        if name not in args and name not in spec.required:
            allowed[name] = [""]
    return {spec.name: allowed}


@dataclass
class ToolcallOptions:
    """Options of the ``toolcall`` environment."""

    format: str = "pythonic"
    mix: dict[str, float] = field(default_factory=lambda: {"single": 0.5, "parallel": 0.3, "none": 0.2})


class ToolcallEnvironment(GeneratedEnvironment):
    """Synthetic tool libraries; one call, parallel calls or none; BFCL-style AST verification."""

    name = "toolcall"
    options_class = ToolcallOptions
    max_difficulty = 5

    def __init__(self, options: Any = None, *, seed: int = 0, difficulty: int = 1):
        super().__init__(options, seed=seed, difficulty=difficulty)
        from edgesmith.core.plugin_manager import get_plugin_manager

        self.format = get_plugin_manager().build("toolcall_format", self.options.format, key="env.toolcall.format")
        mix = dict(self.options.mix)
        if set(mix) - {"single", "parallel", "none"} or any(
                not isinstance(w, (int, float)) or w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise ConfigError("env.toolcall.mix", mix,
                              "non-negative weights for some of single, parallel, none, not all zero")
        self.mix = mix

    def generate(self, rng: random.Random, index: int) -> Task:
        d = self.difficulty
        library = rng.sample(SPECS, min(len(SPECS), 2 + 2 * d))
        kinds = list(self.mix)
        kind = rng.choices(kinds, weights=[self.mix[k] for k in kinds])[0]
        p_optional = 0.25 if d == 1 else 0.5
        calls: list[ToolCall] = []
        expected: list[dict[str, Any]] = []
        if kind == "none":
            if rng.random() < 0.5:
                request, solution = rng.choice(SMALL_TALK).format(values.words(rng, 1, 2)), NO_CALL_SOLUTION
            else:  # ask for something that none of the offered functions does
                missing = [s for s in SPECS if s not in library]
                spec = rng.choice(missing) if missing else None
                if spec is None:
                    request, solution = rng.choice(SMALL_TALK).format(values.words(rng, 1, 2)), NO_CALL_SOLUTION
                else:
                    request = "Please " + spec.ask(spec.draw(rng, p_optional)) + "."
                    solution = UNSERVED_SOLUTION
        else:
            count = 1 if kind == "single" else rng.randint(2, max(2, 1 + d))
            parts = []
            for _ in range(count):
                spec = rng.choice(library)
                args = spec.draw(rng, p_optional)
                calls.append(ToolCall(spec.name, args))
                expected.append(expected_entry(spec, args))
                parts.append(spec.ask(args))
            request = "Please " + (parts[0] if count == 1 else ", and ".join(parts)) + "."
            solution = self.format.render(calls)
        messages = [{"role": "system", "content": "You can call the listed tools. Call them only when they are needed."},
                    {"role": "user", "content": request}]
        tools = [spec.tool() for spec in library]
        reference = {"kind": kind, "expected": expected, "functions": tools}
        return Task(id="", messages=messages, reference=reference, tools=tools, solution=solution,
                    metadata={"kind": kind, "n_calls": len(calls)})

    def verify(self, task: Task, completion: str) -> Verification:
        from edgesmith.plugins.toolcall.ast_checker import check_calls

        reference = task.reference
        parsed = self.format.parse(completion)
        details: dict[str, Any] = {"kind": reference["kind"],
                                   "calls": [{"name": c.name, "arguments": c.arguments} for c in parsed.calls]}
        if not reference["expected"]:
            ok = not parsed.calls
            reason = "" if ok else f"expected no call, got {[c.name for c in parsed.calls]}"
        elif parsed.error is not None:
            ok = False
            reason = (f"malformed tool call: expected {parsed.error.expected} at {parsed.error.position}: "
                      f"{parsed.error.message}")
        else:
            ok, reason = check_calls(parsed.calls, reference["expected"], reference["functions"])
        details["reason"] = reason
        return Verification(1.0 if ok else 0.0, ok, details)
