"""The run folder's lifecycle: where it is, whether it may be used, and its checkpoint files.

:meth:`RunDir.open` is the factory (it checks and creates the folder); the object itself only
names paths and moves checkpoints. Layout (docs/FORMAT.md, "Run folder")::

    last.pt  best.pt  metrics.csv  config.json  summary.json  curves.png
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

from harkit.errors import HarError
from harkit.files import copy_atomic


@dataclass(frozen=True)
class RunDir:
    """An existing run folder."""

    path: Path

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @classmethod
    def open(cls, out, model: str, resume: Optional[Path] = None) -> "RunDir":
        """The folder ``out``, else the resumed checkpoint's folder, else
        ``runs/<model>-<UTC time>`` (made unique); created when missing. A non-empty folder is
        accepted only when it is the resumed checkpoint's own."""
        if out is None and resume is not None:
            out = Path(resume).parent
        if out is None:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            out = Path("runs") / f"{model}-{stamp}"
            n = 1
            while out.exists():
                n += 1
                out = Path("runs") / f"{model}-{stamp}-{n}"
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise HarError(f"--out {out} is a file; choose a folder")
        own = resume is not None and out.resolve() == Path(resume).resolve().parent
        if out.is_dir() and any(out.iterdir()) and not own:
            raise HarError(f"--out {out} already exists and is not empty; choose another --out, "
                           f"or continue its run with --resume {out / 'last.pt'}")
        out.mkdir(parents=True, exist_ok=True)
        return cls(out)

    def is_resumed_in_place(self, resume: Optional[Path]) -> bool:
        """True when ``resume`` is this folder's own last.pt (nothing to write before epoch 1)."""
        return resume is not None and Path(resume).resolve() == self.last.resolve()

    def carry_best(self, resume: Path, ckpt: Dict[str, Any]) -> None:
        """best.pt of a resumed run: the checkpoint itself when it holds the best epoch (best.pt
        is then its copy, even if a Ctrl-C came between writing last.pt and copying it), else the
        checkpoint folder's best.pt when this folder has none, so best.pt always exists."""
        resume = Path(resume)
        if ckpt["epoch"] > 0 and ckpt["epoch"] == ckpt.get("best_epoch"):
            if resume.resolve() != self.best.resolve():
                copy_atomic(resume, self.best)
            return
        source = resume.parent / "best.pt"
        if not self.best.exists() and source.is_file():
            copy_atomic(source, self.best)

    def mark_best(self) -> None:
        """last.pt holds a new best epoch: copy it to best.pt (atomically)."""
        copy_atomic(self.last, self.best)
