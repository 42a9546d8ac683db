"""docs/BENCHMARKS.md: `har bench` repeated in fresh processes, medians per backend, as Markdown.

Each repeat runs ``har bench ... --json`` in its own process (so no repeat inherits another's
warm caches or thread pools); the table shows, per backend, the median over repeats of each
figure, and the 1-minute load average before each repeat (the machine may be shared).

    python benchmarks/bench_latency.py --repeats 3 -- --checkpoint runs/x/best.pt \
        --data prepared/pamap2
    python benchmarks/bench_latency.py --repeats 3 -- --model resnet --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="Folder for the JSON files.")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER,
                        help="Arguments for 'har bench' after '--'.")
    args = parser.parse_args()
    bench_args = [a for a in args.bench_args if a != "--"]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="harkit-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(args.repeats):
        out = folder / f"bench-{i + 1}.json"
        cmd = [sys.executable, "-c", "from cli import main; main()", "bench", *bench_args,
               "--json", str(out)]
        print(f"repeat {i + 1}/{args.repeats}: har bench {' '.join(bench_args)}", file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        results.append(json.loads(out.read_text()))
    print(markdown(results))


def markdown(results) -> str:
    """Median per backend over repeats, one Markdown table."""
    first = results[0]
    sizes = [str(b) for b in first["settings"]["batch_sizes"]]
    loads = ", ".join(f"{r['machine']['load_avg_before'][0]:.2f}" for r in results
                      if r["machine"].get("load_avg_before"))
    lines = [
        f"{first['model']['name']} ({first['weights']}), window {first['input_shape'][1:]}, "
        f"{first['macs'] / 1e6:.1f} M MACs; {first['machine']['cpu']} (class "
        f"{first['machine'].get('cpu_class', '?')}), "
        f"{first['machine']['threads']} threads, torch {first['machine']['torch']}, "
        f"onnxruntime {first['machine']['onnxruntime']}; median of {len(results)} runs of "
        f"{first['settings']['runs']} windows; 1-min load before each run: {loads}",
        "",
        "| backend | p50 ms | p90 ms | p99 ms | × eager | " +
        " | ".join(f"win/s @{b}" for b in sizes)
        + " | GFLOP/s | peak MB | agree % | Δ macro F1 | max Δlogit |",
        "|---" * (10 + len(sizes)) + "|",
    ]
    for name in [row["backend"] for row in first["backends"]]:
        rows = [r for res in results for r in res["backends"] if r["backend"] == name]

        def med(get):
            values = [get(r) for r in rows if get(r) is not None]
            return statistics.median(values) if values else None

        cells = [med(lambda r: r["latency_ms"][q]) for q in ("p50", "p90", "p99")]
        cells.append(med(lambda r: r["speedup_vs_eager"]))
        cells += [med(lambda r, b=b: r["throughput"][b]) for b in sizes]
        cells += [med(lambda r: r["gflops"]), med(lambda r: r["peak_memory_mb"]),
                  med(lambda r: r["agreement_top1"]), med(lambda r: r.get("macro_f1_change")),
                  med(lambda r: r["max_abs_logit_diff"])]
        formats = ["{:,.2f}"] * (len(cells) - 2) + ["{:+.4f}", "{:,.4f}"]
        text = ["-" if c is None else f.format(c) for f, c in zip(formats, cells)]
        lines.append(f"| {name} | " + " | ".join(text) + " |")
    for skip in first["skipped"]:
        lines.append(f"\nskipped {skip['backend']}: {skip['reason']}")
    chosen = [r["recommended"]["backend"] for r in results if r.get("recommended")]
    if chosen:
        lines.append(f"\nrecommended per run: {', '.join(chosen)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
