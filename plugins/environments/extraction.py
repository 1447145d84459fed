"""The ``extraction`` environment: a record written as free text, extracted into JSON by a schema.

Each task picks a record type (person, order, event), draws its field values (names,
places and phrases from the world's open value spaces, split between train and eval so
they must be copied, not recalled), and writes
them as prose with the clauses in random order. The JSON schema of the record is in the
system prompt; the answer is one JSON object. Verification is field by field: the reward is
the share of schema fields that are right (strings compared case- and space-insensitively,
numbers by value, arrays as sets, a field absent from the text must be null or missing);
``correct`` means every field is right. No parsable JSON object gives reward 0.

Difficulty 1-5: ``2 + d`` fields of the record type (capped at all of them); from 3 a
distractor sentence about another record with different values; from 4 one optional field
is left out of the text (its right value is null).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from edgesmith.core.environment import Task, Verification
from edgesmith.core.errors import ConfigError
from edgesmith.plugins.world import values

from .synthetic import GeneratedEnvironment

PLANS = ["basic", "pro", "enterprise"]
STATUSES = ["pending", "shipped", "delivered", "cancelled"]
TAGS = ["vip", "newsletter", "beta", "student", "partner", "remote"]


@dataclass
class _Field:
    name: str
    schema: dict[str, Any]
    draw: Callable[[random.Random], Any]
    phrase: Callable[[Any], str]  # a clause that states the value
    optional: bool = False


RECORDS: dict[str, tuple[str, list[_Field]]] = {  # type -> (how the prompt names it, fields)
    "person": ("a customer", [
        _Field("name", {"type": "string"}, values.full_name, lambda v: f"the customer is called {v}"),
        _Field("age", {"type": "integer"}, lambda r: r.randint(18, 90), lambda v: f"they are {v} years old"),
        _Field("city", {"type": "string"}, values.city, lambda v: f"they live in {v}"),
        _Field("plan", {"type": "string", "enum": PLANS}, lambda r: r.choice(PLANS),
               lambda v: f"they signed up for the {v} plan", optional=True),
        _Field("member", {"type": "boolean"}, lambda r: r.random() < 0.5,
               lambda v: "they are a loyalty member" if v else "they are not a loyalty member", optional=True),
        _Field("email", {"type": "string"},
               lambda r: values.held_out(r, lambda q: f"{values.proper_name(q).lower()}.{q.randint(10, 999)}@example.org"),
               lambda v: f"their email address is {v}", optional=True),
        _Field("tags", {"type": "array", "items": {"type": "string"}},
               lambda r: sorted(r.sample(TAGS, r.randint(1, 3))),
               lambda v: "their account is tagged " + " and ".join(v), optional=True),
    ]),
    "order": ("an order", [
        _Field("order_id", {"type": "string"}, lambda r: f"A-{r.randint(1000, 99999)}",
               lambda v: f"the order number is {v}"),
        _Field("item", {"type": "string"}, lambda r: values.words(r, 1, 2), lambda v: f"it is for a {v}"),
        _Field("quantity", {"type": "integer"}, lambda r: r.randint(1, 12), lambda v: f"{v} of them were ordered"),
        _Field("unit_price", {"type": "number"}, lambda r: round(r.uniform(2, 300), 2),
               lambda v: f"each one costs {v:.2f} dollars"),
        _Field("status", {"type": "string", "enum": STATUSES}, lambda r: r.choice(STATUSES),
               lambda v: f"the order is currently {v}", optional=True),
        _Field("express", {"type": "boolean"}, lambda r: r.random() < 0.5,
               lambda v: "express shipping was chosen" if v else "standard shipping was chosen", optional=True),
    ]),
    "event": ("an event", [
        _Field("title", {"type": "string"}, lambda r: values.words(r, 1, 3).title(),
               lambda v: f"the event is named {v}"),
        _Field("city", {"type": "string"}, values.city, lambda v: f"it takes place in {v}"),
        _Field("date", {"type": "string", "description": "YYYY-MM-DD"},
               lambda r: f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}", lambda v: f"it is held on {v}"),
        _Field("attendees", {"type": "integer"}, lambda r: r.randint(5, 500), lambda v: f"{v} people are expected"),
        _Field("online", {"type": "boolean"}, lambda r: r.random() < 0.5,
               lambda v: "it is also streamed online" if v else "it is in person only", optional=True),
        _Field("ticket_price", {"type": "number"}, lambda r: float(r.randint(0, 80)),
               lambda v: f"a ticket costs {v:.2f} dollars", optional=True),
    ]),
}


@dataclass
class ExtractionOptions:
    """Options of the ``extraction`` environment: ``records`` limits the record types used."""

    records: list[str] = field(default_factory=lambda: ["person", "order", "event"])


def find_json_object(text: str) -> tuple[dict[str, Any] | None, str]:
    """The first JSON object in ``text`` (``None`` and a reason if there is none)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
            if isinstance(value, dict):
                return value, ""
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    return None, "no JSON object in the completion"


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, list):
        return sorted((_norm(v) for v in value), key=repr)
    return value


def field_matches(expected: Any, got: Any, schema: dict[str, Any]) -> bool:
    """Whether an extracted value is right for a field of type ``schema['type']``."""
    if expected is None:
        return got is None
    kind = schema.get("type")
    if kind in ("integer", "number"):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        if kind == "integer" and float(got) != int(got):
            return False
        return abs(float(got) - float(expected)) <= 1e-6 * max(1.0, abs(float(expected)))
    if kind == "boolean":
        return got is expected
    if kind == "array":
        return isinstance(got, list) and _norm(got) == _norm(expected)
    return isinstance(got, str) and _norm(got) == _norm(expected)


class ExtractionEnvironment(GeneratedEnvironment):
    """Free-text records to JSON by a schema, verified field by field."""

    name = "extraction"
    options_class = ExtractionOptions
    max_difficulty = 5

    def __init__(self, options: Any = None, *, seed: int = 0, difficulty: int = 1):
        super().__init__(options, seed=seed, difficulty=difficulty)
        records = list(self.options.records)
        bad = [r for r in records if r not in RECORDS]
        if bad or not records:
            raise ConfigError("env.extraction.records", records, f"a non-empty list from {', '.join(RECORDS)}")
        self.records = records

    def generate(self, rng: random.Random, index: int) -> Task:
        kind = self.records[index % len(self.records)]
        what, all_fields = RECORDS[kind]
        fields = all_fields[:min(len(all_fields), 2 + self.difficulty)]
        values = {f.name: f.draw(rng) for f in fields}
        omitted = set()
        if self.difficulty >= 4:
            optional = [f.name for f in fields if f.optional]
            if optional:
                omitted.add(rng.choice(optional))
        clauses = [f.phrase(values[f.name]) for f in fields if f.name not in omitted]
        rng.shuffle(clauses)
        sentences = [c[0].upper() + c[1:] + "." for c in clauses]
        if self.difficulty >= 3:  # a distractor: another record of the same type with other values
            other = fields[rng.randrange(len(fields))]
            decoy = other.draw(rng)
            sentences.insert(rng.randrange(len(sentences) + 1),
                             f"(Not to be confused with an earlier record, where {other.phrase(decoy)}.)")
        text = " ".join(sentences)
        schema = {"type": "object", "title": kind,
                  "properties": {f.name: f.schema for f in fields},
                  "required": [f.name for f in fields if not f.optional]}
        reference = {f.name: (None if f.name in omitted else values[f.name]) for f in fields}
        system = (f"Extract {what} record from the user's text as one JSON object following this "
                  f"JSON schema. Use null for a field the text does not give. Answer with the JSON only.\n"
                  f"Schema: {json.dumps(schema)}")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        return Task(id="", messages=messages, reference={"record": kind, "schema": schema, "values": reference},
                    solution=json.dumps(reference), metadata={"record": kind})

    def verify(self, task: Task, completion: str) -> Verification:
        properties = task.reference["schema"]["properties"]
        expected = task.reference["values"]
        got, why = find_json_object(completion)
        if got is None:
            return Verification(0.0, False, {"reason": why, "fields": {}})
        results = {name: field_matches(expected.get(name), got.get(name), properties[name]) for name in properties}
        right = sum(results.values())
        wrong = [name for name, ok in results.items() if not ok]
        details = {"fields": results, "reason": "" if not wrong else f"wrong fields: {', '.join(wrong)}"}
        return Verification(right / len(properties), right == len(properties), details)
