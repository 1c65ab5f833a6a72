"""The project's one error type for bad input files."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A file or folder that cannot be used; ``str(e)`` = ``"<path>: <problem>"``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")
