"""Benchmark the distributed training path on the CPU: ``har train --nproc 2`` (2 gloo
processes × 1 thread each) against one process × 2 threads on the same cores, windows/s.

Each configuration trains ``--epochs`` epochs of ``--model`` on ``--data`` in a fresh run
folder; the figure is the training windows per second of the epochs after the first (the
first pays for warm-up), median over ``--runs`` round-robin repetitions. It shows what the
distributed machinery costs here; it is not expected to be faster on 2 cores.

Usage::

    python benchmarks/ddp_bench.py --data bench/demo --runs 3 [--epochs 3] [--model resnet]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Tuple

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "1 process x 2 threads": ["--threads", "2"],
    "2 processes x 1 thread, --sync-bn": ["--nproc", "2", "--sync-bn"],
    "2 processes x 1 thread, --no-sync-bn": ["--nproc", "2", "--no-sync-bn"],
}


def windows_per_s(run: Path) -> Tuple[float, float]:
    """Training windows per second over the epochs after the first (metrics.csv epoch_s), and
    the last epoch's val macro F1."""
    train = json.loads((run / "config.json").read_text())["data"]["windows"]["train"]
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    later = rows[1:] or rows
    speed = train * len(later) / sum(float(r["epoch_s"]) for r in later)
    return speed, float(rows[-1]["val_f1_macro"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="bench/demo")
    ap.add_argument("--model", default="resnet")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    figures = {name: [] for name in CONFIGS}
    scores = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name, extra in CONFIGS.items():
                run = Path(tmp) / f"{i}-{len(figures[name])}-{extra[0]}{extra[-1]}"
                subprocess.run([sys.executable, "-m", "har", "train", "--data", args.data,
                                "--model", args.model, "--epochs", str(args.epochs),
                                "--batch-size", str(args.batch_size), "--out", str(run),
                                *extra], cwd=REPO, check=True, capture_output=True)
                speed, f1 = windows_per_s(run)
                figures[name].append(speed)
                scores[name].append(f1)
                print(f"run {i + 1}: {name}: {speed:.1f} windows/s, val macro F1 {f1:.3f}",
                      flush=True)
    base = statistics.median(figures["1 process x 2 threads"])
    print(f"\n{args.model}, batch {args.batch_size}, {args.data}; median of {args.runs} runs")
    for name, values in figures.items():
        med = statistics.median(values)
        print(f"  {name:<40} {med:8.1f} windows/s  ({min(values):.1f}-{max(values):.1f}), "
              f"{med / base:.2f}x, val macro F1 {statistics.median(scores[name]):.3f}")


if __name__ == "__main__":
    main()
