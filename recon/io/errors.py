"""One-line, user-facing file errors: which file, what is wrong, what to do.

The CLI prints ``str(error)`` as its single error line and exits non-zero; batch runs collect the
same line per failed input for their summary.
"""

from __future__ import annotations

from pathlib import Path


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): what a summary or
    the CLI's single error line shows."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class FileProblem(Exception):
    """Base of :class:`InputError` and :class:`OutputError`; ``str()`` is exactly one line."""

    def __init__(self, path: str | Path, problem: str, remedy: str):
        self.path = Path(path)
        self.problem = _one_line(problem)
        self.remedy = _one_line(remedy)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; {self.remedy}"


class InputError(FileProblem):
    """An input the run cannot use (missing, not an image, too small or large, no object in it...)."""


class OutputError(FileProblem):
    """An output location the run cannot write to."""
