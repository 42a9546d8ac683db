"""What a training run records: ``metrics.csv`` (one row per epoch), ``config.json`` and
``summary.json`` in the run folder, and the epoch table printed by ``har train``. Formats:
docs/FORMAT.md ("Run folder"). Every file is written atomically."""

from __future__ import annotations

import csv
import io
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from harkit import __version__
from harkit.files import write_atomic, write_json

METRICS_COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_precision_macro",
                   "val_recall_macro", "val_f1_macro", "val_f1_weighted", "epoch_s",
                   "val_infer_s", "train_latency_ms")
#: Columns that measure time; the others are equal for equal seeds on the CPU.
TIMING_COLUMNS = ("epoch_s", "val_infer_s", "train_latency_ms")


def write_metrics(path: Path, history: List[Dict[str, Any]]) -> Path:
    """metrics.csv: :data:`METRICS_COLUMNS`, 8 significant digits, empty for "no value"."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRICS_COLUMNS)
    for row in history:
        writer.writerow(["" if row[c] is None else (row[c] if c == "epoch" else f"{row[c]:.8g}")
                         for c in METRICS_COLUMNS])
    return write_atomic(path, buf.getvalue())


def run_config(training: Dict[str, Any], model_config: Dict[str, Any], device: Dict[str, Any],
               digest: str, resume, windows: Dict[str, int],
               versions: Dict[str, str]) -> Dict[str, Any]:
    """config.json: the model, every training option, the data, the device and the versions."""
    return {
        "model": dict(model_config), "training": training,
        "data": {"path": training["data"], "meta_sha256": digest, "windows": windows},
        "device": device,
        "versions": {"harkit": __version__, **versions, "python": platform.python_version()},
        "resumed_from": None if resume is None else str(resume),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def summary(model: str, run_dir: Path, epochs: int, stopped: str, best_epoch: int,
            best_row: Optional[Dict[str, Any]], has_val: bool,
            test: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """summary.json: the best epoch, its val scores and training latency, and the test split's
    scores of best.pt (``har evaluate``'s figures for the same checkpoint and split)."""
    best_val = None
    if best_row is not None and has_val:
        best_val = {k[4:]: best_row[k] for k in METRICS_COLUMNS
                    if k.startswith("val_") and k != "val_infer_s"}
    return {
        "model": model, "run_dir": str(run_dir), "epochs": epochs, "stopped": stopped,
        "selection": "best val macro F1" if has_val else "last epoch (no val split)",
        "best_epoch": best_epoch, "best_val": best_val, "test": test,
        "train_latency_ms": None if best_row is None else best_row["train_latency_ms"],
        "checkpoint": str(run_dir / "best.pt"),
    }


def write_summary(run_dir: Path, data: Dict[str, Any]) -> Path:
    return write_json(Path(run_dir) / "summary.json", data)


# --------------------------------------------------------------------------- printing
EPOCH_HEADER = (f"{'epoch':>5}  {'train_loss':>10}  {'val_loss':>8}  {'acc':>6}  {'P_macro':>7}  "
                f"{'R_macro':>7}  {'F1_macro':>8}  {'F1_w':>6}  {'epoch_s':>7}  {'val_s':>6}  "
                f"{'train_ms':>8}")


def format_epoch_row(row: Dict[str, Any]) -> str:
    """One printed line per epoch, aligned with :data:`EPOCH_HEADER`."""
    def num(key, width, digits):
        value = row.get(key)
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    return (f"{row['epoch']:>5}  {num('train_loss', 10, 4)}  {num('val_loss', 8, 4)}  "
            f"{num('val_accuracy', 6, 4)}  {num('val_precision_macro', 7, 4)}  "
            f"{num('val_recall_macro', 7, 4)}  {num('val_f1_macro', 8, 4)}  "
            f"{num('val_f1_weighted', 6, 4)}  {num('epoch_s', 7, 2)}  {num('val_infer_s', 6, 3)}  "
            f"{num('train_latency_ms', 8, 2)}")
