"""edgesmith's BFCL AST checker gives the official checker's verdicts (bfcl_eval's own module)."""

from __future__ import annotations

import pytest

from edgesmith.core.toolcall import ToolCall
from edgesmith.plugins.toolcall.ast_checker import check_calls

import bfcl_eval  # noqa: F401,E402  (installed by scripts/setup.sh: its absence is a failure, not a skip)

FUNCTIONS = [{"name": "f", "parameters": {"type": "dict", "required": ["n"], "properties": {
    "n": {"type": "integer"},
    "xs": {"type": "array", "items": {"type": "string"}},
    "pair": {"type": "tuple", "items": {"type": "integer"}},
    "city": {"type": "string"},
}}}]
EXPECTED = [{"f": {"n": ["count"], "xs": ["", ["a"]], "pair": ["", [1, 2]], "city": ["", "New York"]}}]


def _both(args):
    from edgesmith.plugins.environments.bfcl_agreement import STUB_MODEL, official_checker
    from bfcl_eval.constants.enums import Language

    official = official_checker().ast_checker(FUNCTIONS, [{"f": args}], EXPECTED, Language.PYTHON, "simple_python",
                                              STUB_MODEL)["valid"]
    return official, check_calls([ToolCall("f", args)], EXPECTED, FUNCTIONS)[0]


@pytest.mark.parametrize("args,valid", [
    ({"n": "count"}, True),
    ({"n": "count", "xs": ("a",)}, False),  # a tuple is not an array
    ({"n": "count", "pair": (1, 2)}, True),  # but is read as a list for a tuple parameter
    ({"n": "count", "xs": []}, True),  # an optional array may be given empty
    ({"n": "count", "city": "new york"}, True),  # strings of string parameters are normalized
    ({"n": "COUNT"}, False),  # a variable-name answer of an integer parameter is compared exactly
    ({"n": "count."}, False),
    ({"n": 3}, False),
])
def test_the_three_classes_agree_with_the_official_checker(args, valid):
    assert _both(args) == (valid, valid)


def test_mutated_reference_answers_agree_with_the_official_checker():
    """Every 7th row of each Python AST category, ~8,000 cases with ~25 kinds of mutation."""
    from edgesmith.plugins.environments.bfcl_agreement import compare

    result = compare(every=7)
    assert result.cases > 5000 and result.official_raised == 0
    assert {"tuple", "empty_list", "dontcare", "dontcare_dot", "upper", "reordered"} <= set(result.by_mutation)
    assert result.disagreements == [], result.disagreements[:3]
    assert set(result.deliberate) <= {"any_type_takes_any_value", "int_for_float_in_a_list",
                                      "greedy_matching_rejects_an_order"}
