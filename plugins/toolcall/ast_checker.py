"""AST matching of predicted tool calls against allowed answers, by BFCL's rules.

The Berkeley Function Calling Leaderboard scores a call by its structure, not by running
it. The rules implemented here (written from BFCL's documentation and behaviour):

- the function name must be the expected one;
- every parameter the schema lists as ``required`` must be present;
- every given parameter must exist in the schema and in the expected answer;
- a given value must have the schema's type (an ``int`` is accepted where a float is
  expected; ``bool`` is never an ``int``; a tuple is not an ``array``, and is read as a
  list only for a ``tuple`` parameter). As in BFCL, a value whose type is the type of the
  allowed answers is also accepted: BFCL writes some answers that are variable names as
  strings for non-string parameters, and such a value is compared exactly (``'DONTCARE'``
  is not ``'dontcare'`` there);
- the value must be one of the allowed values. Strings are compared after BFCL's
  normalization: lower-cased, with spaces and the characters ``, . / - _ * ^`` removed,
  and single quotes read as double quotes. Inside lists and dicts the same comparison
  applies element by element. An allowed dict is a mapping ``key -> [allowed values]``
  (nested the same way), and a key whose allowed list contains ``""`` may be left out;
- a parameter of the expected answer that is not given must have ``""`` among its allowed
  values (that is how BFCL marks an optional parameter); such an array parameter may also
  be given as ``[]`` (BFCL's list comparison reads the ``""`` as an empty list);
- several calls are matched without regard to order (a perfect matching between
  predicted and expected calls must exist; unlike a greedy scan this never rejects a set of
  calls that could be paired up); the numbers of calls must be equal;
- no expected call (BFCL's irrelevance categories) means the prediction must hold no call.

Three deliberate differences, all lenient: a parameter typed ``any`` (or without a type)
takes a value of any type (BFCL requires a string), an ``int`` is accepted for a float
inside lists too, and parallel calls are paired by a perfect matching where BFCL pairs
greedily. ``bfcl_agreement`` runs both checkers on BFCL's reference answers and their
mutations (``python -m edgesmith.plugins.environments.bfcl_agreement``): with bfcl-eval
2026.3.23's data, 56,853 of 56,854 cases agree and the other is the greedy-pairing difference.

Schemas may be BFCL function docs (types ``dict``, ``float``, ``tuple``, ``any``) or JSON
schema tools (``object``, ``number``; optionally wrapped as ``{"type": "function",
"function": {...}}``): both spell the same rules.
"""

from __future__ import annotations

import re
from typing import Any

from edgesmith.core.toolcall import ToolCall

# type name (BFCL or JSON schema) -> the Python types a value may have
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "str": (str,),
    "integer": (int,),
    "int": (int,),
    "float": (float, int),  # int accepted where a float is expected
    "number": (float, int),
    "boolean": (bool,),
    "bool": (bool,),
    "array": (list,),  # a tuple is not an array (BFCL rejects it; its decoder makes tuples of `(...)`)
    "tuple": (list,),  # a tuple value is read as a list first (match_value), as BFCL does
    "list": (list,),
    "dict": (dict,),
    "object": (dict,),
    "null": (type(None),),
}
_ANY = {"any", "", None}
# BFCL's PYTHON_TYPE_MAPPING (plus the JSON-schema spellings): when the allowed answers are not of
# this type (e.g. a variable name written as a string for an integer), BFCL compares exactly.
_ANSWER_TYPE: dict[str, type] = {"string": str, "str": str, "integer": int, "int": int, "float": float,
                                 "number": float, "boolean": bool, "bool": bool, "array": list, "list": list,
                                 "tuple": list, "dict": dict, "object": dict, "any": str}

_NORMALIZE = re.compile(r"[ ,./\-_*^]")


def normalize_string(text: str) -> str:
    """BFCL's string normalization: no spaces or ``,./-_*^``, lower case, ``'`` read as ``"``."""
    return _NORMALIZE.sub("", text).lower().replace("'", '"')


def function_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """The bare function schema (``{"name", "parameters", ...}``) of a tool in either spelling."""
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        return tool["function"]
    return tool


def _type_names(schema: dict[str, Any] | None) -> list[Any]:
    if not isinstance(schema, dict):
        return [None]
    t = schema.get("type")
    return list(t) if isinstance(t, list) else [t]


def _type_ok(value: Any, schema: dict[str, Any] | None) -> bool:
    names = _type_names(schema)
    if any(n in _ANY for n in names):
        return True
    for name in names:
        accepted = _TYPES.get(str(name).lower())
        if accepted is None:  # a type name we do not know: do not fail the call on it
            return True
        if isinstance(value, bool) and bool not in accepted:
            continue  # True is an int in Python, but not an integer to BFCL
        if isinstance(value, accepted):
            return True
    return False


def _same_type(value: Any, example: Any) -> bool:
    if isinstance(value, bool) or isinstance(example, bool):
        return isinstance(value, bool) and isinstance(example, bool)
    return type(value) is type(example)


def _is_array(schema: dict[str, Any] | None) -> bool:
    return any(str(n).lower() in ("array", "tuple", "list") for n in _type_names(schema))


def _is_variable(schema: dict[str, Any] | None, examples: list[Any]) -> bool:
    """BFCL's ``is_variable``: the allowed answers' type is not the schema's (compare exactly, no normalizing)."""
    names = _type_names(schema)
    expected = _ANSWER_TYPE.get(str(names[0]).lower()) if len(names) == 1 and names[0] is not None else None
    return bool(examples) and expected is not None and type(examples[0]) is not expected


def _equal(value: Any, allowed: Any, normalize: bool = True) -> bool:
    """Equality by BFCL's comparison: normalized strings, bool apart from int, lists in order."""
    if isinstance(value, str) and isinstance(allowed, str):
        return normalize_string(value) == normalize_string(allowed) if normalize else value == allowed
    if isinstance(value, bool) or isinstance(allowed, bool):
        return isinstance(value, bool) and isinstance(allowed, bool) and value == allowed
    if isinstance(value, (int, float)) and isinstance(allowed, (int, float)):
        return value == allowed
    if isinstance(value, (list, tuple)) and isinstance(allowed, (list, tuple)):
        return len(value) == len(allowed) and all(_equal(v, a) for v, a in zip(value, allowed))
    if isinstance(value, dict) and isinstance(allowed, dict):
        return value.keys() == allowed.keys() and all(_equal(value[k], allowed[k]) for k in value)
    return value is None and allowed is None


def _is_allowed_dict(candidate: Any) -> bool:
    """BFCL writes an allowed dict value as ``{key: [allowed values]}``."""
    return isinstance(candidate, dict) and all(isinstance(v, list) for v in candidate.values())


def _dict_reason(value: dict, candidate: dict, schema: dict | None, where: str) -> str | None:
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    for key, item in value.items():
        if key not in candidate:
            return f"{where}: unexpected key {key!r}"
        reason = match_value(item, candidate[key], props.get(key), f"{where}[{key!r}]")
        if reason:
            return reason
    for key, allowed in candidate.items():
        if key not in value and "" not in allowed:
            return f"{where}: missing key {key!r}"
    return None


def _one_reason(value: Any, candidate: Any, schema: dict | None, where: str) -> str | None:
    """Why ``value`` does not match one allowed ``candidate`` (None when it does)."""
    if isinstance(value, dict) and _is_allowed_dict(candidate):
        return _dict_reason(value, candidate, schema, where)
    if isinstance(value, (list, tuple)) and isinstance(candidate, list):
        if len(value) != len(candidate):
            return f"{where}: {len(value)} items, expected {len(candidate)}"
        items = schema.get("items") if isinstance(schema, dict) else None
        for i, (v, c) in enumerate(zip(value, candidate)):
            if isinstance(v, dict) and _is_allowed_dict(c):
                reason = _dict_reason(v, c, items, f"{where}[{i}]")
            else:
                reason = None if _equal(v, c) else f"{where}[{i}]: {v!r} is not {c!r}"
            if reason:
                return reason
        return None
    return None if _equal(value, candidate) else f"{where}: {value!r} is not {candidate!r}"


def match_value(value: Any, allowed: list[Any], schema: dict[str, Any] | None, where: str) -> str | None:
    """None when ``value`` is one of ``allowed`` (BFCL rules), else the reason."""
    if not isinstance(allowed, list):
        raise ValueError(f"{where}: the allowed values must be a list, got {type(allowed).__name__} {allowed!r}")
    examples = [a for a in allowed if a != ""]
    if isinstance(value, tuple) and "tuple" in [str(n).lower() for n in _type_names(schema)]:
        value = list(value)  # BFCL reads a tuple given for a `tuple` parameter as a list
    if not _type_ok(value, schema) and not (examples and _same_type(value, examples[0])):
        return f"{where}: wrong type {type(value).__name__} (schema type {schema.get('type') if isinstance(schema, dict) else None!r})"
    if isinstance(value, (list, tuple)) and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        element_examples = [e for a in examples if isinstance(a, list) for e in a]
        for i, item in enumerate(value):
            if not _type_ok(item, schema["items"]) and not any(_same_type(item, e) for e in element_examples):
                return f"{where}[{i}]: wrong item type {type(item).__name__} (schema type {schema['items'].get('type')!r})"
    if _is_variable(schema, examples):
        # BFCL compares such values exactly: 'DONTCARE' is not 'dontcare.' for an integer parameter
        if any(_equal(value, a, normalize=False) for a in allowed):
            return None
        return f"{where}: {value!r} is not one of {allowed!r} (compared exactly: the answers are not of the schema's type)"
    if isinstance(value, str) and "" in allowed and normalize_string(value) == "":
        return None  # BFCL compares normalized strings, "" included
    if isinstance(value, list) and not value and "" in allowed and _is_array(schema):
        return None  # an optional array may be given empty: BFCL's list comparison reads "" as []
    reasons = []
    for candidate in examples:
        reason = _one_reason(value, candidate, schema, where)
        if reason is None:
            return None
        reasons.append(reason)
    if len(reasons) == 1:
        return reasons[0]
    return f"{where}: {value!r} is not one of the allowed values {examples!r}"


def check_call(
    predicted: ToolCall, expected_name: str, expected_args: dict[str, list[Any]], schema: dict[str, Any] | None
) -> str | None:
    """None when ``predicted`` is a correct call of ``expected_name``; else the reason."""
    if predicted.name != expected_name:
        return f"wrong function name: expected {expected_name!r}, got {predicted.name!r}"
    if not isinstance(expected_args, dict):
        raise ValueError(f"expected arguments of {expected_name} must be a mapping param -> [allowed values]")
    params = schema.get("parameters", {}) if isinstance(schema, dict) else {}
    props = params.get("properties", {}) or {}
    required = params.get("required", []) or []
    args = predicted.arguments if isinstance(predicted.arguments, dict) else {}
    for name in required:
        if name not in args:
            return f"{expected_name}: missing required parameter {name!r}"
    for name, value in args.items():
        if (schema is not None and name not in props) or name not in expected_args:
            return f"{expected_name}: unexpected parameter {name!r}"
        reason = match_value(value, expected_args[name], props.get(name), f"{expected_name}({name}=...)")
        if reason:
            return reason
    for name, allowed in expected_args.items():
        if name not in args and "" not in allowed:
            return f"{expected_name}: missing parameter {name!r} (its allowed values do not include omission)"
    return None


def _split_expected(entry: Any, index: int) -> tuple[str, dict[str, list[Any]]]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(
            f"expected call #{index} must be a mapping with one key, "
            f"{{function_name: {{param: [allowed values]}}}}; got {entry!r}"
        )
    (name, args), = entry.items()
    if not isinstance(args, dict):
        raise ValueError(f"expected call #{index} ({name}): arguments must be a mapping, got {args!r}")
    return name, args


def _perfect_matching(ok: list[list[bool]]) -> list[int] | None:
    """Kuhn's augmenting paths: match[i] = predicted index for expected i, or None if impossible."""
    n = len(ok)
    owner: dict[int, int] = {}  # predicted index -> expected index

    def augment(i: int, seen: set[int]) -> bool:
        for j, good in enumerate(ok[i]):
            if good and j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(n):
        if not augment(i, set()):
            return None
    match = [0] * n
    for j, i in owner.items():
        match[i] = j
    return match


def check_calls(
    predicted: list[ToolCall],
    expected: list[dict[str, dict[str, list[Any]]]],
    functions: list[dict[str, Any]],
    ordered: bool = False,
) -> tuple[bool, str]:
    """Whether ``predicted`` calls match ``expected`` (BFCL's possible-answer layout).

    ``expected`` is a list of ``{function_name: {param: [allowed values]}}``, one per
    expected call (empty: no call is correct). ``functions`` are the tools offered (BFCL
    docs or JSON-schema tools). Returns ``(True, "")`` or ``(False, reason)``. A malformed
    ``expected`` raises ``ValueError``: that is a data bug, not a model mistake.
    """
    wanted = [_split_expected(e, i) for i, e in enumerate(expected)]
    schemas = {}
    for tool in functions or []:
        f = function_schema(tool)
        if isinstance(f, dict) and "name" in f:
            schemas[f["name"]] = f
    if not wanted:
        if predicted:
            return False, f"expected no function call, got {len(predicted)}: {[c.name for c in predicted]}"
        return True, ""
    if len(predicted) != len(wanted):
        return False, f"wrong number of calls: expected {len(wanted)}, got {len(predicted)}"
    if ordered:
        for i, ((name, args), call) in enumerate(zip(wanted, predicted)):
            reason = check_call(call, name, args, schemas.get(name))
            if reason:
                return False, f"call #{i}: {reason}"
        return True, ""
    reasons = [[check_call(call, name, args, schemas.get(name)) for call in predicted] for name, args in wanted]
    if _perfect_matching([[r is None for r in row] for row in reasons]) is not None:
        return True, ""
    # Explain with the first expected call that no prediction can stand for, or else the
    # fact that the calls cannot be paired one to one.
    for i, row in enumerate(reasons):
        if all(r is not None for r in row):
            return False, f"no predicted call matches expected call #{i} ({wanted[i][0]}): " + "; ".join(row)
    return False, "the predicted calls cannot be paired one to one with the expected calls"
