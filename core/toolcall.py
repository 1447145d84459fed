"""The tool-call format interface: render calls into text and parse them back, never raising."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .options import NoOptions, build_options


@dataclass
class ToolCall:
    """A function call: its name and keyword arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParseError:
    """Why model output is not a valid tool call: what was expected and where it failed."""

    expected: str
    position: int
    message: str


@dataclass
class ParseResult:
    """Parsed output: the text around calls, the calls, and an error if the calls were malformed."""

    content: str
    calls: list[ToolCall] = field(default_factory=list)
    error: ParseError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ToolCallFormat(ABC):
    """Base class of tool-call format plugins (``pythonic``, ``json``).

    ``options_class`` declares what a user may set (the built-in formats take nothing).
    """

    name: str = "toolcall_format"
    options_class: ClassVar[type] = NoOptions
    start_token: str = ""
    end_token: str = ""

    def __init__(self, options: Any = None):
        self.options = build_options(self.options_class, options, f"toolcall_format {self.name}")

    @abstractmethod
    def render(self, calls: list[ToolCall]) -> str:
        """The text an assistant writes to make ``calls`` (markers included)."""

    @abstractmethod
    def parse(self, text: str) -> ParseResult:
        """Parses model output; malformed output gives ``ParseResult.error``, never an exception."""
