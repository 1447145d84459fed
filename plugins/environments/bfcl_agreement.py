"""Checks that edgesmith's BFCL AST checker gives the official checker's verdict, case by case.

The cases are BFCL's own reference answers (``bfcl_eval/data/possible_answer``) for every
Python AST category, each with mutations that probe the rules: an optional parameter left
out, another allowed value, a tuple or ``[]`` for an array, case and punctuation changes of a
string (also for variable-name answers of non-string parameters), a value of another type,
an extra parameter, a wrong function name, and (parallel) the calls reordered or one dropped.

The official checker (``bfcl_eval.eval_checker.ast_eval.ast_checker``) is imported from the
installed package. Its module imports ``bfcl_eval.constants.model_config`` for one lookup
(whether a provider spells dotted function names with underscores), and that module pulls
in every provider SDK; it is replaced by a stub answering "no" to that lookup, and nothing
else is touched. Run ``python -m edgesmith.plugins.environments.bfcl_agreement`` for all
cases (``--every N`` for every N-th row).

Three deliberate, documented differences are counted apart, not as disagreements (see
``ast_checker``): a parameter typed ``any`` takes a value of any type, an ``int`` is
accepted for a float inside a list, and parallel calls are paired by a perfect matching
(the official checker pairs greedily, so it fails some orders of a right answer; such a
case counts as deliberate only when the official checker accepts another order of it).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from edgesmith.core.toolcall import ToolCall

from edgesmith.plugins.toolcall.ast_checker import check_calls
from .bfcl import _category_file, _read_jsonl, bfcl_data_dir

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "live_simple", "live_multiple",
              "live_parallel", "live_parallel_multiple")
STUB_MODEL = "stub-model"


def official_checker() -> Any:
    """bfcl_eval's own AST checker module, imported without the provider SDKs."""
    name = "bfcl_eval.constants.model_config"
    if name not in sys.modules:
        stub = types.ModuleType(name)
        stub.__doc__ = "edgesmith stub: only the underscore_to_dot lookup of the AST checker is needed"
        stub.MODEL_CONFIG_MAPPING = {STUB_MODEL: types.SimpleNamespace(underscore_to_dot=False)}
        sys.modules[name] = stub
    from bfcl_eval.eval_checker.ast_eval import ast_checker

    return ast_checker


@dataclass
class Agreement:
    cases: int = 0
    agreed: int = 0
    deliberate: Counter = field(default_factory=Counter)  # documented lenient differences, by kind
    official_raised: int = 0
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    by_mutation: Counter = field(default_factory=Counter)


def _first(allowed: list[Any]) -> tuple[bool, Any]:
    for value in allowed:
        if value != "":
            return True, value
    return False, None


def _realize(value: Any) -> Any:
    """A concrete value from an allowed value (an allowed dict maps key -> [allowed values])."""
    if isinstance(value, dict):
        out = {}
        for key, allowed in value.items():
            if isinstance(allowed, list):
                present, item = _first(allowed)
                if present:
                    out[key] = _realize(item)
            else:
                out[key] = allowed
        return out
    if isinstance(value, list):
        return [_realize(v) for v in value]
    return value


def _value_mutations(value: Any, allowed: list[Any]) -> Iterator[tuple[str, Any]]:
    others = [a for a in allowed if a != "" and a != value]
    for other in others[:2]:
        yield "other_allowed", _realize(other)
    if isinstance(value, list):
        yield "tuple", tuple(value)
        yield "empty_list", []
        if value and isinstance(value[0], str):
            yield "list_item_upper", [value[0].upper(), *value[1:]]
    elif isinstance(value, str):
        yield "upper", value.upper()
        yield "punctuated", value + "."
        yield "dontcare", "DONTCARE"
        yield "dontcare_dot", "dontcare."
        yield "as_int", 7
    elif isinstance(value, bool):
        yield "bool_as_str", str(value)
    elif isinstance(value, int):
        yield "int_as_str", str(value)
        yield "int_as_float", float(value)
        yield "int_plus_one", value + 1
    elif isinstance(value, float):
        yield "float_as_str", str(value)
        if value.is_integer():
            yield "float_as_int", int(value)
    elif isinstance(value, dict) and value:
        key = next(iter(value))
        yield "dict_key_dropped", {k: v for k, v in value.items() if k != key}
        if isinstance(value[key], str):
            yield "dict_value_upper", {**value, key: value[key].upper()}


def _calls_mutations(expected: list[dict[str, dict[str, list[Any]]]]) -> Iterator[tuple[str, list[dict]]]:
    base = []
    for entry in expected:
        (name, params), = entry.items()
        args = {}
        for param, allowed in params.items():
            present, value = _first(allowed)
            if present:
                args[param] = _realize(value)
        base.append({name: args})
    yield "reference", base
    for i, call in enumerate(base):
        (name, args), = call.items()
        allowed_of = next(iter(expected[i].values()))
        for param, value in args.items():
            dropped = {k: v for k, v in args.items() if k != param}
            yield "param_dropped", [*base[:i], {name: dropped}, *base[i + 1:]]
            for kind, mutated in _value_mutations(value, allowed_of[param]):
                yield kind, [*base[:i], {name: {**args, param: mutated}}, *base[i + 1:]]
        yield "extra_param", [*base[:i], {name: {**args, "zz_extra": 1}}, *base[i + 1:]]
        yield "wrong_name", [*base[:i], {name + "_x": args}, *base[i + 1:]]
    if len(base) > 1:
        yield "reordered", list(reversed(base))
        yield "call_dropped", base[1:]


def _deliberate(functions: list[dict], output: list[dict]) -> str | None:
    """The documented lenient difference a case falls under, if any."""
    docs = {f.get("name"): f for f in functions}
    for call in output:
        (name, args), = call.items()
        props = (docs.get(name) or {}).get("parameters", {}).get("properties", {})
        for param, value in args.items():
            schema = props.get(param) or {}
            if schema.get("type") == "any" and not isinstance(value, str):
                return "any_type_takes_any_value"
            items = schema.get("items") or {}
            if (schema.get("type") in ("array", "tuple") and items.get("type") == "float"
                    and isinstance(value, (list, tuple)) and any(type(v) is int for v in value)):
                return "int_for_float_in_a_list"
    return None


def _greedy_order(official: Any, language: Any, functions: list, output: list, expected: list,
                  category: str) -> str | None:
    """The official parallel checker pairs calls greedily: some orders of a right answer fail it."""
    if not 1 < len(output) <= 5:
        return None
    for order in itertools.permutations(output):
        if official.ast_checker(copy.deepcopy(functions), copy.deepcopy(list(order)), copy.deepcopy(expected),
                                language.PYTHON, category, STUB_MODEL)["valid"]:
            return "greedy_matching_rejects_an_order"
    return None


def compare(every: int = 1, categories: tuple[str, ...] = CATEGORIES, keep: int = 20) -> Agreement:
    """Runs both checkers on the mutated reference answers of every ``every``-th row."""
    official = official_checker()
    from bfcl_eval.constants.enums import Language

    data = bfcl_data_dir()
    result = Agreement()
    for category in categories:
        path = _category_file(data, category)
        answers = {row["id"]: row["ground_truth"] for _, row in _read_jsonl(data / "possible_answer" / path.name)}
        for index, (_, row) in enumerate(_read_jsonl(path)):
            if index % every or row["id"] not in answers:
                continue
            functions, expected = row["function"], answers[row["id"]]
            for kind, output in _calls_mutations(expected):
                try:
                    verdict = official.ast_checker(copy.deepcopy(functions), copy.deepcopy(output),
                                                   copy.deepcopy(expected), Language.PYTHON, category,
                                                   STUB_MODEL)["valid"]
                except Exception:  # the official checker crashes on a few mutants: no verdict to compare
                    result.official_raised += 1
                    continue
                calls = [ToolCall(name, dict(args)) for call in output for name, args in call.items()]
                ours, reason = check_calls(calls, expected, functions)
                result.cases += 1
                result.by_mutation[kind] += 1
                if ours == verdict:
                    result.agreed += 1
                    continue
                why = _deliberate(functions, output) or _greedy_order(official, Language, functions, output,
                                                                       expected, category)
                if why and ours and not verdict:
                    result.deliberate[why] += 1
                    continue
                if len(result.disagreements) < keep:
                    result.disagreements.append({"id": row["id"], "mutation": kind, "official": verdict,
                                                 "edgesmith": ours, "reason": reason, "output": output})
                else:
                    result.disagreements.append({"id": row["id"], "mutation": kind})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="check every N-th row of each category")
    args = parser.parse_args(argv)
    result = compare(every=args.every)
    print(json.dumps({"cases": result.cases, "agreed": result.agreed, "deliberate": dict(result.deliberate),
                      "official_raised": result.official_raised, "disagreements": len(result.disagreements),
                      "by_mutation": dict(result.by_mutation)}, indent=2))
    for item in result.disagreements[:20]:
        print(json.dumps(item, default=repr)[:600])
    return 1 if result.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
