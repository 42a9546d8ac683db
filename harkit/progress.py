"""Progress bars on stderr, drawn only when stderr is a terminal (logs and pipes stay clean)."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterable, Optional


def progress_bar(iterable: Optional[Iterable] = None, *, label: str, enabled: bool = True,
                 length: Optional[int] = None):
    """A ``click.progressbar`` on stderr when ``enabled`` and stderr is a TTY, else a context
    manager yielding a stand-in with the same ``update``/iteration interface that draws nothing."""
    if enabled and sys.stderr.isatty():
        import click

        return click.progressbar(iterable, length=length, label=label, file=sys.stderr)
    return contextlib.nullcontext(_Silent(iterable))


class _Silent:
    def __init__(self, iterable):
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable)

    def update(self, n_steps: int, current_item=None) -> None:
        pass
