"""Benchmark `har prepare` on the full-size synthetic PAMAP2 Protocol folder.

Measured in one run, each figure the median of ``--runs`` repetitions, files in the page cache:

* ``pyarrow``   pyarrow.csv.read_csv of the same 37 columns (label + 36 IMU channels) of every
                file: the floor for parsing this text format in Python's ecosystem. Timed
                twice: in this long-lived process (runs after the first reuse its warm memory
                pool) and, as ``pyarrow_fresh``, in a new process per run like the CLI;
* ``pandas``    a per-subject ``pd.read_csv`` loop of the kind reference scripts use, doing the
                same job as prepare (interpolate, drop transient, every 3rd row, windows per
                activity run, train/val/test by subject, z-score) without a cache;
* ``cold``      ``har prepare`` (the CLI, a fresh process) with an empty parse cache;
* ``warm``      ``har prepare --window 128`` afterwards: a different window, from the cache;
* peak resident memory of the cold and warm CLI processes.

Usage::

    python benchmarks/prepare_bench.py --runs 3 [--raw bench/raw]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fresh import clear, run_python, warm_bytecode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data_prep.datasets import pamap2  # noqa: E402

CHILD = """
import atexit, json, resource, sys, time
t0 = time.perf_counter()
def report():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall_s": time.perf_counter() - t0, "peak_bytes": rss}), file=sys.stderr)
atexit.register(report)
from cli import main
main(sys.argv[1:])
"""


def files_of(raw: Path):
    return sorted((raw / "Protocol").glob("subject*.dat"))


def bench_pyarrow(raw: Path) -> float:
    import pyarrow.csv as pacsv

    cols = ["activity_id"] + pamap2.imu_channels()
    t = time.perf_counter()
    for f in files_of(raw):
        table = pacsv.read_csv(
            f, read_options=pacsv.ReadOptions(column_names=list(pamap2.COLUMNS)),
            parse_options=pacsv.ParseOptions(delimiter=" "),
            convert_options=pacsv.ConvertOptions(include_columns=cols))
        table.to_pandas()
    return time.perf_counter() - t


def bench_pandas(raw: Path, out: Path) -> float:
    """A reference-style script: pandas per subject, then windows per activity run."""
    import pandas as pd

    chans = [pamap2.COLUMN_INDEX[c] for c in pamap2.imu_channels()]
    ids = list(pamap2.PROTOCOL_ACTIVITIES)
    t = time.perf_counter()
    xs = {"train": [], "val": [], "test": []}
    ys = {"train": [], "val": [], "test": []}
    for f in files_of(raw):
        subject = pamap2.subject_id(f.name)
        df = pd.read_csv(f, sep=" ", header=None)
        df = df.interpolate(limit_area="inside")
        df = df[df[1] != 0].iloc[::3]
        split = "val" if subject == 105 else "test" if subject == 106 else "train"
        run_id = (df[1] != df[1].shift()).cumsum()
        for _, run in df.groupby(run_id):
            values = run[chans].to_numpy(np.float32)
            label = ids.index(int(run[1].iloc[0]))
            for s in range(0, len(values) - 171 + 1, 85):
                w = values[s:s + 171]
                if not np.isnan(w).any():
                    xs[split].append(w)
                    ys[split].append(label)
    arrays = {k: np.stack(v) for k, v in xs.items() if v}
    mean = arrays["train"].reshape(-1, 36).mean(0)
    std = arrays["train"].reshape(-1, 36).std(0)
    out.mkdir(parents=True, exist_ok=True)
    for k, x in arrays.items():
        np.save(out / f"x_{k}.npy", ((x - mean) / std).astype(np.float32))
        np.save(out / f"y_{k}.npy", np.array(ys[k]))
    return time.perf_counter() - t


def in_fresh_process(name: str, *args) -> float:
    """Seconds that ``bench_<name>(*args)`` reports when run in a new Python process, as the
    CLI runs: no memory pool or page-fault warm-up carried over from earlier repetitions."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            f"import prepare_bench as b; from pathlib import Path; "
            f"print(b.bench_{name}(*map(Path, sys.argv[1:])))")
    proc = run_python(code, args)
    return float(proc.stdout.strip().splitlines()[-1])


def run_cli(args) -> dict:
    os.sync()                        # (run_python syncs too: this keeps it out of the time)
    started = time.perf_counter()
    proc = run_python(CHILD, args, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"har {' '.join(map(str, args))} failed:\n{proc.stderr}")
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    return {"wall_s": wall, "peak_gb": stats["peak_bytes"] / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, default=ROOT / "bench/raw",
                        help="full-size synthetic folder (written with --full-size if missing)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args()
    if not (args.raw / "Protocol").is_dir():
        from data_prep.synth import synth_pamap2

        print(f"writing the full-size synthetic Protocol folder to {args.raw} ...")
        synth_pamap2(args.raw, full_size=True, seed=0)
    files = files_of(args.raw)
    size = sum(f.stat().st_size for f in files)
    print(f"{len(files)} files, {size / 1e9:.2f} GB")
    for f in files:                      # warm the page cache
        f.read_bytes()
    warm_bytecode()
    work = Path(tempfile.mkdtemp(prefix="harkit-bench-"))
    results = {k: [] for k in ("pyarrow", "pyarrow_fresh", "pandas", "cold", "warm", "cold_gb",
                                "warm_gb")}
    try:
        for i in range(args.runs):
            results["pyarrow"].append(bench_pyarrow(args.raw))
            results["pyarrow_fresh"].append(in_fresh_process("pyarrow", args.raw))
            if not args.skip_pandas:
                results["pandas"].append(bench_pandas(args.raw, work / "pandas"))
            cache = work / f"cache{i}"
            cold = run_cli(["prepare", args.raw, "--out", clear(work / "prep"), "--cache-dir",
                            cache, "--force"])
            warm = run_cli(["prepare", args.raw, "--out", clear(work / "prep"), "--cache-dir",
                            cache, "--force", "--window", "128"])
            results["cold"].append(cold["wall_s"])
            results["cold_gb"].append(cold["peak_gb"])
            results["warm"].append(warm["wall_s"])
            results["warm_gb"].append(warm["peak_gb"])
            shutil.rmtree(cache)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in results.items()
                                               if v))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"\nmedian of {args.runs} runs")
    print(f"  pyarrow parse (37 columns)      {med['pyarrow']:7.2f} s   (in this process, "
          "warm after run 1)")
    print(f"  pyarrow parse, fresh process    {med['pyarrow_fresh']:7.2f} s   (as the CLI runs)")
    if "pandas" in med:
        print(f"  pandas reference script         {med['pandas']:7.2f} s")
    print(f"  har prepare, cold (CLI)         {med['cold']:7.2f} s   "
          f"= {med['cold'] / med['pyarrow']:.2f} x pyarrow, "
          f"{med['cold'] / med['pyarrow_fresh']:.2f} x pyarrow in a fresh process"
          + (f", {med['pandas'] / med['cold']:.1f} x faster than pandas" if "pandas" in med
             else ""))
    print(f"  har prepare --window 128, warm  {med['warm']:7.2f} s")
    print(f"  peak memory cold / warm         {med['cold_gb']:.2f} / {med['warm_gb']:.2f} GB")


if __name__ == "__main__":
    main()
