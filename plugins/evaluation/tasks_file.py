"""Reads a JSONL file of fixed evaluation tasks, with an error naming the line and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgesmith.core.environment import Task
from edgesmith.core.errors import EdgesmithError
from edgesmith.core.jsonl import line_error, read_jsonl

ROLES = ("system", "user", "assistant", "tool")
ROW_FORMAT = ('{"env": NAME, "messages": [{"role": "user", "content": "..."}], "reference": ..., '
              '"id": optional str, "tools": optional list, "solution": optional str}')


class DatasetError(EdgesmithError, ValueError):
    """A dataset row is malformed; the message names the file, the line and what is accepted."""


def _row_error(path: Path, line: int, problem: str) -> DatasetError:
    return line_error(path, line, problem, f"rows {ROW_FORMAT}", DatasetError)


def parse_task_row(row: Any, path: Path, line: int, env_names: list[str]) -> tuple[str, Task]:
    """The environment name and the task of one row."""
    if not isinstance(row, dict):
        raise _row_error(path, line, f"a row must be a JSON object, got {type(row).__name__}")
    env = row.get("env")
    if env not in env_names:
        raise _row_error(path, line, f"unknown or missing 'env' {env!r} (registered environments: "
                                     f"{', '.join(env_names)})")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _row_error(path, line, "'messages' must be a non-empty list of chat messages")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content", ""), (str, type(None))):
            raise _row_error(path, line, f"messages[{k}] must be {{'role': one of {', '.join(ROLES)}, "
                                         f"'content': str}}, got {m!r:.120}")
    if "reference" not in row:
        raise _row_error(path, line, "missing 'reference' (what the environment's verifier checks against)")
    tools = row.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise _row_error(path, line, "'tools' must be a list of JSON-schema objects")
    task_id = row.get("id", f"{path.stem}-{line}")
    if not isinstance(task_id, (str, int)):
        raise _row_error(path, line, f"'id' must be a string, got {task_id!r:.60}")
    return env, Task(id=str(task_id), messages=messages, reference=row["reference"], tools=tools,
                     solution=row.get("solution"), metadata=dict(row.get("metadata") or {}))


def read_tasks_file(path: str | Path, env_names: list[str]) -> dict[str, list[Task]]:
    """Tasks grouped by environment name, in file order. An empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"tasks_file {path} does not exist; accepted: a JSONL file, one task per line")
    grouped: dict[str, list[Task]] = {}
    for line, row in read_jsonl(path, f"rows {ROW_FORMAT}", DatasetError):
        env, task = parse_task_row(row, path, line, env_names)
        grouped.setdefault(env, []).append(task)
    if not grouped:
        raise DatasetError(f"tasks_file {path} holds no tasks: the evaluation set is empty")
    return grouped
