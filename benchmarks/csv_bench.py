"""Benchmark ``har prepare --dataset csv`` on 10 M rows × 6 channels of CSV against pyarrow.

The data: ``--files`` CSV files (one subject each), ``time,ax,ay,az,gx,gy,gz,label,subject``
at 50 Hz, 10 M rows in all (about 0.8 GB), written once into ``--raw`` by this script. Files are
in the page cache when timed. Measured, each the median of ``--runs`` runs, every run a fresh
process (as the CLI runs):

* ``pyarrow``  ``pyarrow.csv.read_csv`` of the 9 columns prepare needs (time, 6 channels, label,
               subject), same types, every file: the floor for parsing this text in Python.
               Timed from the script's first line, imports included, as ``prepare`` is;
* ``pyarrow-4k`` the same with transparent huge pages off for the process, as ``prepare``
               runs (``data_prep.pages``): the like-for-like floor on machines where they cost;
* ``prepare``  ``har prepare RAW --dataset csv --no-cache`` (parse, hash, gap checks, windows,
               splits, normalization, writing), its wall time and peak memory;
* ``warm``     ``har prepare`` with the parse cache filled by an earlier run, another window.

Usage::

    python benchmarks/csv_bench.py --runs 3 [--raw bench/csv] [--rows 10000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fresh import clear, run_python, warm_bytecode

REPO = Path(__file__).resolve().parents[1]
CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
LABELS = ("walking", "sitting", "standing", "running", "cycling", "stairs")
RATE_HZ = 50.0

PYARROW = """
import json, resource, sys, time
t0 = time.perf_counter()
import pyarrow as pa, pyarrow.csv as pacsv
from pathlib import Path
types = {c: pa.float32() for c in %(channels)r}
types.update(time=pa.float64(), label=pa.string(), subject=pa.string())
rows = 0
for f in sorted(Path(sys.argv[1]).glob("*.csv")):
    table = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(
        include_columns=list(types), column_types=types))
    rows += table.num_rows
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": rows,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

#: The same, transparent huge pages off first (prctl PR_SET_THP_DISABLE), as prepare runs.
PYARROW_4K = """
import ctypes
ctypes.CDLL(None).prctl(41, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                        ctypes.c_ulong(0))
""" + PYARROW

CLI = """
import atexit, json, resource, sys, time
t0 = time.perf_counter()
def report():
    print(json.dumps({"seconds": time.perf_counter() - t0,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
          file=sys.stderr)
atexit.register(report)
sys.argv = ["har"] + sys.argv[1:]
from cli import main
main(sys.argv[1:])
"""


def write_data(raw: Path, rows: int, files: int, seed: int = 0) -> None:
    """``files`` subjects of ``rows / files`` rows each: activities in bouts of 10-60 s."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per = rows // files
    for k in range(files):
        bouts = []
        total = 0
        while total < per:
            n = min(int(rng.uniform(10, 60) * RATE_HZ), per - total)
            bouts.append((int(rng.integers(len(LABELS))), n))
            total += n
        label = np.concatenate([np.full(n, b) for b, n in bouts])
        t = np.arange(per) / RATE_HZ
        columns = {"time": np.round(t, 3)}
        for j, name in enumerate(CHANNELS):
            f = 0.5 + label * 0.4 + j * 0.1
            columns[name] = np.round(np.sin(2 * np.pi * f * t) + 0.2 * rng.standard_normal(per),
                                     4).astype(np.float32)
        columns["label"] = np.array(LABELS)[label]
        columns["subject"] = np.full(per, f"S{k + 1:02d}")
        pacsv.write_csv(pa.table(columns), raw / f"S{k + 1:02d}.csv")


def run(code: str, args, stream: str = "stdout") -> dict:
    done = run_python(code, args)
    text = done.stdout if stream == "stdout" else done.stderr
    return json.loads(text.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", type=Path, default=REPO / "bench" / "csv")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.raw.is_dir():
        t = time.perf_counter()
        write_data(args.raw, args.rows, args.files)
        print(f"wrote {args.rows:,} rows to {args.raw} in {time.perf_counter() - t:.1f} s")
    size = sum(f.stat().st_size for f in args.raw.glob("*.csv"))
    for f in args.raw.glob("*.csv"):
        f.read_bytes()                                   # into the page cache
    warm_bytecode()
    work = Path(tempfile.mkdtemp(prefix="csv-bench-"))
    common = ["prepare", args.raw, "--dataset", "csv", "--window", "100", "--val-subjects",
              "S09", "--test-subjects", "S10", "--force"]
    results = {"pyarrow": [], "pyarrow-4k": [], "prepare": [], "warm": []}
    try:
        for i in range(args.runs):
            results["pyarrow"].append(run(PYARROW % {"channels": CHANNELS}, [args.raw]))
            results["pyarrow-4k"].append(run(PYARROW_4K % {"channels": CHANNELS}, [args.raw]))
            cold = common + ["--out", clear(work / "cold"), "--no-cache"]
            results["prepare"].append(run(CLI, cold, "stderr"))
            if i == 0:
                run(CLI, common + ["--out", work / "fill", "--cache-dir", work / "cache"],
                    "stderr")
            warm = common + ["--out", clear(work / "warm"), "--window", "128", "--cache-dir",
                             work / "cache"]
            results["warm"].append(run(CLI, warm, "stderr"))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]['seconds']:.2f} s"
                                               for k, v in results.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    peak = {k: max(r["peak_mb"] for r in v) for k, v in results.items()}
    print(f"\n{args.rows:,} rows x {len(CHANNELS)} channels, {size / 1e6:.0f} MB of CSV in "
          f"{args.files} files; median of {args.runs} runs, each a fresh process")
    print(f"{'what':<11} {'seconds':>8} {'peak MB':>8}")
    for k in results:
        print(f"{k:<11} {med[k]:>8.2f} {peak[k]:>8.0f}")
    print(f"prepare / pyarrow parse = {med['prepare'] / med['pyarrow']:.2f}x "
          f"({med['prepare'] / med['pyarrow-4k']:.2f}x of pyarrow with huge pages off too)")


if __name__ == "__main__":
    main()
