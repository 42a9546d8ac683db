"""Benchmark ``har prepare`` on the full-size synthetic WISDM raw file against pyarrow.

The data: ``har synth wisdm RAW --full-size`` (about 1.1 M records in WISDM v1.1's raw text
format, its flaws included), written once into ``--raw``. pyarrow cannot read the format as it
is (records end in ``;``, some lines hold several), so the floor is the cheapest pyarrow parse of
it: ``;`` made a newline, then ``pyarrow.csv.read_csv`` of the 6 fields with their types. Each
figure is the median of ``--runs`` runs of a whole fresh process (interpreter start and imports
included for both, as a user waits for them), the file in the page cache:

* ``pyarrow``  that parse;
* ``prepare``  ``har prepare RAW --no-cache`` (parse, flaws counted, recordings, windows, splits,
               normalization, writing).

Usage::

    python benchmarks/wisdm_bench.py --runs 3 [--raw bench/wisdm]
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

from fresh import clear, run_python, warm_bytecode

REPO = Path(__file__).resolve().parents[1]

PYARROW = """
import json, sys
import pyarrow as pa, pyarrow.csv as pacsv
data = open(sys.argv[1], "rb").read().replace(b",;", b";;").replace(b";", b"\\n")
table = pacsv.read_csv(pa.py_buffer(data), read_options=pacsv.ReadOptions(
    column_names=["user", "activity", "timestamp", "x", "y", "z"]),
    parse_options=pacsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
    convert_options=pacsv.ConvertOptions(column_types={
        "user": pa.int64(), "timestamp": pa.int64(), "x": pa.float32(), "y": pa.float32(),
        "z": pa.float32(), "activity": pa.dictionary(pa.int32(), pa.string())},
        null_values=[""], strings_can_be_null=True))
print(json.dumps({"records": table.num_rows}))
"""

CLI = "from cli import main; main()"


def run(code: str, args) -> dict:
    """Wall seconds of a whole fresh process (interpreter start and imports included, as a
    user waits for them), and what it printed as JSON, if anything."""
    os.sync()                        # (run_python syncs too: this keeps it out of the time)
    t0 = time.perf_counter()
    done = run_python(code, args)
    seconds = time.perf_counter() - t0
    lines = done.stdout.strip().splitlines()
    extra = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return {"seconds": seconds, **extra}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", type=Path, default=REPO / "bench" / "wisdm")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.raw.is_dir():
        sys.path.insert(0, str(REPO))
        from data_prep.synth import synth_wisdm

        t = time.perf_counter()
        report = synth_wisdm(args.raw, full_size=True)
        print(f"wrote {report['rows']:,} records to {args.raw} in {time.perf_counter() - t:.1f} s")
    raw_file = args.raw / "WISDM_ar_v1.1" / "WISDM_ar_v1.1_raw.txt"
    raw_file.read_bytes()                                   # into the page cache
    warm_bytecode()
    work = Path(tempfile.mkdtemp(prefix="wisdm-bench-"))
    results = {"pyarrow": [], "prepare": []}
    try:
        for i in range(args.runs):
            results["pyarrow"].append(run(PYARROW, [raw_file]))
            results["prepare"].append(run(CLI, ["prepare", args.raw, "--out", clear(work / "p"),
                                                "--force", "--no-cache"]))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]['seconds']:.2f} s"
                                               for k, v in results.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    print(f"\n{results['pyarrow'][0]['records']:,} records, {raw_file.stat().st_size / 1e6:.0f} MB;"
          f" median of {args.runs} runs, each a fresh process")
    for k, v in med.items():
        print(f"{k:<10} {v:>8.2f} s")
    print(f"prepare / pyarrow parse = {med['prepare'] / med['pyarrow']:.2f}x")


if __name__ == "__main__":
    main()
