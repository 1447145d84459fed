"""``bfcl``: the Berkeley Function Calling Leaderboard's single-turn AST categories, on BFCL's real data.

The data ships in the ``bfcl-eval`` package (``bfcl_eval/data/BFCL_v<N>_<category>.json``
and ``possible_answer/``), read with :mod:`importlib.resources`; ``bfcl_eval`` itself
imports nothing heavy. Install it with ``pip install --no-deps bfcl-eval==2026.3.23``.

Categories (option ``categories``; names as users type them -> BFCL's file category)::

    simple -> simple_python, multiple, parallel, parallel_multiple, irrelevance,
    live_simple, live_multiple, live_parallel, live_parallel_multiple, live_irrelevance

Each task's prompt is BFCL's question in edgesmith's chat template with the category's
functions as JSON-schema tools (BFCL's ``dict``/``float``/``tuple``/``any`` become
``object``/``number``/``array``/no type). The verifier parses the completion with the
``pythonic`` format (option ``format=json`` for Hermes-style models) and scores it with
:func:`edgesmith.plugins.toolcall.ast_checker.check_calls`. As in BFCL, an
irrelevance task is correct when the completion holds no call, including when what looks
like a call cannot be decoded.

BFCL has no train/eval split: a task goes to ``eval`` when a hash of its id falls under
``eval_fraction`` (default 0.5), so the split is fixed whatever the seed, and the seed only
orders the tasks. ``tasks(split, n)`` interleaves the selected categories so a small ``n``
still covers all of them; it returns fewer than ``n`` tasks when the split holds fewer.
``difficulty`` is not used: BFCL's categories are the difficulty axis.

A handful of BFCL's answers cannot be met under BFCL's own rules (in this version: a
ground-truth parameter absent from the schema, a required parameter without allowed
values). Those rows are found at load time, because their reference solution fails the
checker, and are left out of ``tasks`` unless ``include_unanswerable=true``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgesmith.core.environment import Environment, Split, Task, Verification
from edgesmith.core.errors import ConfigError, EdgesmithError
from edgesmith.core.jsonl import line_error, read_jsonl
from edgesmith.core.toolcall import ToolCall

from edgesmith.plugins.toolcall.ast_checker import check_calls

INSTALL_HINT = "pip install --no-deps bfcl-eval==2026.3.23"

#: category name users type -> BFCL's category in the file names
CATEGORIES: dict[str, str] = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "irrelevance": "irrelevance",
    "live_simple": "live_simple",
    "live_multiple": "live_multiple",
    "live_parallel": "live_parallel",
    "live_parallel_multiple": "live_parallel_multiple",
    "live_irrelevance": "live_irrelevance",
}
IRRELEVANCE = {"irrelevance", "live_irrelevance"}
FORMATS = ("pythonic", "json")

NO_CALL_ANSWER = "None of the available functions can do this, so I will not call any of them."

# BFCL's parameter types -> JSON schema types (None: any value, no "type" key)
_JSON_TYPES: dict[str, str | None] = {
    "string": "string",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "tuple": "array",
    "dict": "object",
    "object": "object",
    "any": None,
}


class BfclDataError(EdgesmithError, ValueError):
    """A BFCL data file or row is malformed; the message names the file, line and id."""


class BfclNotInstalled(EdgesmithError, ImportError):
    """The ``bfcl-eval`` package (which carries the data) is not installed."""


@dataclass
class BfclOptions:
    """Options of the ``bfcl`` environment (``env.bfcl.<key>=...``)."""

    # a list, or one comma-separated string (``env.bfcl.categories=simple,multiple``)
    categories: Any = field(default_factory=lambda: list(CATEGORIES))
    format: str = "pythonic"  # tool-call format the completions are parsed with
    eval_fraction: float = 0.5  # share of each category's tasks in the eval split
    data_dir: str | None = None  # a directory laid out like bfcl_eval/data (default: the package's)
    system_prompt: str | None = None  # prepended as (or to) the system message
    include_unanswerable: bool = False  # keep the few rows whose BFCL answer breaks BFCL's rules


def bfcl_data_dir() -> Path:
    """The ``data`` directory inside the installed ``bfcl_eval`` package."""
    import importlib.resources

    try:
        root = importlib.resources.files("bfcl_eval")
    except ModuleNotFoundError:
        raise BfclNotInstalled(
            f"the bfcl environment needs the BFCL data from the bfcl-eval package, which is not installed; "
            f"install it with: {INSTALL_HINT}"
        ) from None
    data = Path(str(root / "data"))
    if not data.is_dir():
        raise BfclNotInstalled(f"bfcl_eval is installed but has no data directory at {data}; reinstall with: {INSTALL_HINT}")
    return data


def _category_file(data_dir: Path, category: str) -> Path:
    """The newest ``BFCL_v<N>_<category>.json`` in ``data_dir``."""
    found = []
    for path in data_dir.glob(f"BFCL_v*_{category}.json"):
        version = path.name[len("BFCL_v"):].split("_", 1)[0]
        if version.isdigit() and path.name == f"BFCL_v{version}_{category}.json":
            found.append((int(version), path))
    if not found:
        raise BfclDataError(f"no BFCL data file for category '{category}' (BFCL_v<N>_{category}.json) in {data_dir}")
    return max(found)[1]


_ROW = "one JSON object with a string 'id' per line (BFCL's data files)"


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for lineno, row in read_jsonl(path, _ROW, BfclDataError):
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise line_error(path, lineno, "a row must be a JSON object with a string 'id'", _ROW, BfclDataError)
        rows.append((lineno, row))
    return rows


def to_json_schema(schema: Any, where: str) -> dict[str, Any]:
    """A BFCL parameter schema as JSON schema (types renamed, BFCL's ``optional`` flag dropped)."""
    if not isinstance(schema, dict):
        raise BfclDataError(f"{where}: a parameter schema must be an object, got {schema!r}")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            if value not in _JSON_TYPES:
                raise BfclDataError(f"{where}: unknown parameter type {value!r}; accepted: {', '.join(_JSON_TYPES)}")
            if _JSON_TYPES[value] is not None:
                out["type"] = _JSON_TYPES[value]
        elif key == "properties":
            if not isinstance(value, dict):
                raise BfclDataError(f"{where}: 'properties' must be an object")
            out[key] = {name: to_json_schema(sub, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = to_json_schema(value, f"{where}[]")
        elif key != "optional":  # BFCL's own marker; JSON schema says it with "required"
            out[key] = value
    return out


def to_tool(function: Any, where: str) -> dict[str, Any]:
    """A BFCL function doc as a JSON-schema tool ``{"type": "function", "function": {...}}``."""
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BfclDataError(f"{where}: a function must be an object with a string 'name'")
    params = function.get("parameters", {"type": "dict", "properties": {}})
    converted = {key: value for key, value in function.items() if key != "parameters"}
    converted["parameters"] = to_json_schema(params, f"{where} {function['name']}")
    return {"type": "function", "function": converted}


def _validate_expected(expected: Any, where: str) -> list[dict[str, dict[str, list[Any]]]]:
    if not isinstance(expected, list):
        raise BfclDataError(f"{where}: 'ground_truth' must be a list of calls, got {type(expected).__name__}")
    for i, call in enumerate(expected):
        ok = isinstance(call, dict) and len(call) == 1
        if ok:
            (args,) = call.values()
            ok = isinstance(args, dict) and all(isinstance(v, list) for v in args.values())
        if not ok:
            raise BfclDataError(
                f"{where}: ground_truth call #{i} must be {{function_name: {{param: [allowed values]}}}}, got {call!r}"
            )
    return expected


def _first_allowed(allowed: list[Any], required: bool) -> tuple[bool, Any]:
    """(present, value): the first allowed value, or omission when BFCL allows it."""
    if "" in allowed and not required:
        return False, None
    for value in allowed:
        if value != "":
            return True, _realize(value)
    return True, ""


def _realize(value: Any) -> Any:
    """An allowed value with nested ``{key: [allowed]}`` dicts replaced by their first choices."""
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        out = {}
        for key, allowed in value.items():
            present, item = _first_allowed(allowed, required=False)
            if present:
                out[key] = item
        return out
    if isinstance(value, list):
        return [_realize(v) for v in value]
    return value


def reference_calls(expected: list[dict[str, dict[str, list[Any]]]], functions: list[dict[str, Any]]) -> list[ToolCall]:
    """Correct calls built from the first allowed value of each parameter (optional ones omitted)."""
    required_of = {
        f.get("name"): set(f.get("parameters", {}).get("required", []) or []) for f in functions if isinstance(f, dict)
    }
    calls = []
    for entry in expected:
        (name, params), = entry.items()
        args = {}
        for param, allowed in params.items():
            present, value = _first_allowed(allowed, param in required_of.get(name, set()))
            if present:
                args[param] = value
        calls.append(ToolCall(name=name, arguments=args))
    return calls


@lru_cache(maxsize=32)
def load_category(data_dir: str, category: str) -> tuple[dict[str, Any], ...]:
    """Validated rows of one BFCL category: id, messages, functions, tools, expected calls."""
    root = Path(data_dir)
    path = _category_file(root, category)
    answers: dict[str, tuple[int, Any]] = {}
    if category not in IRRELEVANCE:
        answer_path = root / "possible_answer" / path.name
        if not answer_path.is_file():
            raise BfclDataError(f"no possible answers for category '{category}': {answer_path} is missing")
        for lineno, row in _read_jsonl(answer_path):
            if "ground_truth" not in row:
                raise BfclDataError(f"{answer_path}, line {lineno} (id {row['id']}): missing 'ground_truth'")
            answers[row["id"]] = (lineno, row["ground_truth"])
    rows = []
    for lineno, row in _read_jsonl(path):
        where = f"{path}, line {lineno} (id {row['id']})"
        question, functions = row.get("question"), row.get("function")
        if not (isinstance(question, list) and question and isinstance(question[0], list)):
            raise BfclDataError(f"{where}: 'question' must be a list of turns, each a list of messages")
        if len(question) != 1:
            raise BfclDataError(f"{where}: {len(question)} turns; the bfcl environment reads single-turn rows only")
        messages = question[0]
        for message in messages:
            if not (isinstance(message, dict) and isinstance(message.get("role"), str) and "content" in message):
                raise BfclDataError(f"{where}: a message must be an object with 'role' and 'content', got {message!r}")
        # An irrelevance row may offer no function at all (the answer is still: no call).
        if not isinstance(functions, list) or (not functions and category not in IRRELEVANCE):
            raise BfclDataError(f"{where}: 'function' must be a non-empty list of function docs")
        tools = [to_tool(f, where) for f in functions]
        if category in IRRELEVANCE:
            expected: list[Any] = []
        else:
            if row["id"] not in answers:
                raise BfclDataError(f"{where}: no possible answer with this id in possible_answer/{path.name}")
            answer_line, truth = answers[row["id"]]
            expected = _validate_expected(truth, f"possible_answer/{path.name}, line {answer_line} (id {row['id']})")
        # A few BFCL answers break BFCL's own rules (a parameter missing from the schema, an
        # empty allowed list): no completion can pass them, and their reference solution
        # would be wrong SFT data. They are marked here and left out unless asked for.
        unanswerable = None
        if expected:
            ok, reason = check_calls(reference_calls(expected, functions), expected, functions)
            unanswerable = None if ok else reason
        rows.append({
            "id": row["id"], "messages": messages, "functions": functions, "tools": tools,
            "expected": expected, "unanswerable": unanswerable,
        })
    return tuple(rows)


def _in_eval(task_id: str, eval_fraction: float) -> bool:
    digest = hashlib.sha256(task_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction


class BfclEnvironment(Environment):
    """BFCL's AST categories as an environment: real prompts, real tools, BFCL's AST scoring."""

    name = "bfcl"
    options_class = BfclOptions

    def __init__(self, options: Any = None, *, seed: int = 0, difficulty: int = 1):
        super().__init__(options, seed=seed, difficulty=difficulty)
        cats = self.options.categories
        if isinstance(cats, str):
            cats = [c.strip() for c in cats.split(",") if c.strip()]
        cats = list(cats)
        file_names = {v: k for k, v in CATEGORIES.items()}
        resolved = []
        for cat in cats:
            name = file_names.get(cat, cat)  # BFCL's own file names work too
            if name not in CATEGORIES:
                raise ConfigError("env.bfcl.categories", cat, f"one of {', '.join(CATEGORIES)}")
            resolved.append(name)
        if not resolved:
            raise ConfigError("env.bfcl.categories", cats, f"a non-empty list from {', '.join(CATEGORIES)}")
        self.categories = list(dict.fromkeys(resolved))
        if self.options.format not in FORMATS:
            raise ConfigError("env.bfcl.format", self.options.format, " or ".join(FORMATS))
        if not 0.0 <= float(self.options.eval_fraction) <= 1.0:
            raise ConfigError("env.bfcl.eval_fraction", self.options.eval_fraction, "a number in [0, 1]")
        if self.options.format == "json":
            from edgesmith.plugins.toolcall.json_format import JsonFormat

            self.format = JsonFormat()
        else:
            from edgesmith.plugins.toolcall.pythonic import PythonicFormat

            self.format = PythonicFormat()
        self.data_dir = str(Path(self.options.data_dir)) if self.options.data_dir else str(bfcl_data_dir())

    def rows(self, category: str) -> tuple[dict[str, Any], ...]:
        """All rows of a category (``simple``, ``live_multiple``, ...), validated."""
        return load_category(self.data_dir, CATEGORIES[category])

    def _messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        messages = [dict(m) for m in messages]
        prompt = self.options.system_prompt
        if prompt:
            if messages and messages[0]["role"] == "system":
                messages[0]["content"] = f"{prompt}\n{messages[0]['content']}"
            else:
                messages.insert(0, {"role": "system", "content": prompt})
        return messages

    def _task(self, category: str, row: dict[str, Any]) -> Task:
        if row["expected"]:
            solution = self.format.render(reference_calls(row["expected"], row["functions"]))
        else:
            solution = NO_CALL_ANSWER
        return Task(
            id=f"bfcl/{row['id']}",
            messages=self._messages(row["messages"]),
            reference={"category": category, "expected": row["expected"], "functions": row["functions"]},
            tools=row["tools"],
            solution=solution,
            metadata={"category": category, "bfcl_id": row["id"]},
        )

    def tasks(self, split: Split, n: int) -> list[Task]:
        if split not in ("train", "eval"):
            raise ConfigError("split", split, "'train' or 'eval'")
        want_eval = split == "eval"
        per_category = []
        for cat in self.categories:
            rows = [
                r for r in self.rows(cat)
                if _in_eval(r["id"], self.options.eval_fraction) == want_eval
                and (self.options.include_unanswerable or r["unanswerable"] is None)
            ]
            random.Random(f"bfcl:{self.seed}:{split}:{cat}").shuffle(rows)
            per_category.append((cat, rows))
        if not any(rows for _, rows in per_category):
            raise ConfigError(
                "env.bfcl.eval_fraction", self.options.eval_fraction,
                f"a value that leaves tasks in the '{split}' split (categories {self.categories} have none there)",
            )
        tasks: list[Task] = []
        depth = 0
        while len(tasks) < n and any(depth < len(rows) for _, rows in per_category):
            for cat, rows in per_category:
                if depth < len(rows) and len(tasks) < n:
                    tasks.append(self._task(cat, rows[depth]))
            depth += 1
        return tasks

    def verify(self, task: Task, completion: str) -> Verification:
        reference = task.reference
        parsed = self.format.parse(completion)
        calls = parsed.calls
        details: dict[str, Any] = {
            "category": reference["category"],
            "calls": [{"name": c.name, "arguments": c.arguments} for c in calls],
            "parse_error": None,
        }
        if parsed.error is not None:
            details["parse_error"] = {
                "expected": parsed.error.expected, "position": parsed.error.position, "message": parsed.error.message
            }
        if not reference["expected"]:
            # BFCL: an irrelevance answer is right when nothing decodes as a call.
            ok = not calls
            reason = "" if ok else f"expected no function call, got {[c.name for c in calls]}"
        elif parsed.error is not None:
            ok, reason = False, f"malformed tool call: expected {parsed.error.expected} at {parsed.error.position}: {parsed.error.message}"
        else:
            ok, reason = check_calls(calls, reference["expected"], reference["functions"], ordered=False)
        details["reason"] = reason
        return Verification(reward=1.0 if ok else 0.0, correct=ok, details=details)
