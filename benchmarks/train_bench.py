"""Training throughput: the seed's plain eager fp32 loop vs harkit's loop with each technique.

Every technique trains the same model (same seed, same initial weights) on the same batches of
the same prepared data (one seeded permutation per pass), so the first-step losses can be read
side by side. Windows/s is the median over ``--runs`` runs of ``--steps`` timed optimizer steps
after ``--warmup`` untimed ones (oneDNN primitive creation, torch.compile).

Techniques (``--techniques``, comma-separated; default all):

* ``seed``            -- the copied seed loop: fp32, a ``DataLoader``
* ``fp32``            -- harkit's step (``har.train.train_step``), tensors sliced directly
* ``fp32-cl``         -- + channels-last (NHWC) memory format (harkit's default without bf16)
* ``bf16``            -- + bf16 autocast
* ``bf16-cl``         -- channels-last + bf16 autocast (harkit's default on AMX CPUs)
* ``bf16-cl-compile`` -- + ``torch.compile``

Techniques run round-robin (run 1 of each, then run 2 of each, ...) so that a busy neighbour
slows all of them alike (``--wait-quiet S`` also waits for idle CPUs before each run); besides
wall-clock windows/s the table gives windows per CPU-second (process time), which a neighbour
disturbs less.

``--curve EPOCHS`` also trains full epochs with ``har.train.fit`` with and without AMP and prints
both metrics tables (the "equal loss curves" check).

Example::

    har synth pamap2 /tmp/x/raw --seconds-per-activity 30
    har prepare /tmp/x/raw --out /tmp/x/prep
    python benchmarks/train_bench.py --data /tmp/x/prep --runs 3 --steps 3
    python benchmarks/train_bench.py --data /tmp/x/prep --techniques seed,bf16-cl --curve 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep import load_prepared  # noqa: E402
from har.device import grad_scaler  # noqa: E402
from har.models import create_model  # noqa: E402
from har.train import EPOCH_HEADER, fit, format_epoch_row, train_step  # noqa: E402
from har.train.options import model_overrides  # noqa: E402

TECHNIQUES = {
    # name: (amp dtype, channels_last, compile)
    "seed": (None, False, False),
    "fp32": (None, False, False),
    "fp32-cl": (None, True, False),
    "bf16": (torch.bfloat16, False, False),
    "bf16-cl": (torch.bfloat16, True, False),
    "bf16-cl-compile": (torch.bfloat16, True, True),
}


def batch_indices(n: int, batch_size: int, count: int, seed: int):
    """``count`` full batches of indices in the order harkit's loop draws them (seeded
    permutations of ``range(n)``)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < count:
        order = torch.randperm(n, generator=gen)
        out += [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    return out[:count]


def seed_loop(model, x, y, indices, args):
    """The seed's loop as users copy it: a DataLoader (here fed the same batches) and eager
    fp32 steps. Returns (losses, wall s, cpu s) per step."""
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x, y), batch_sampler=[idx.tolist() for idx in indices])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    criterion = nn.CrossEntropyLoss()
    losses, walls, cpus = [], [], []
    model.train()
    it = iter(loader)
    for _ in indices:
        t0, c0 = time.perf_counter(), time.process_time()
        xb, yb = next(it)
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return losses, walls, cpus


def harkit_loop(model, x, y, indices, args, dtype, channels_last: bool):
    """harkit's training step (batches sliced from tensors). Returns (losses, wall s, cpu s)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    scaler = grad_scaler(torch.device("cpu"), dtype)
    criterion = nn.CrossEntropyLoss()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    losses, walls, cpus = [], [], []
    model.train()
    for idx in indices:
        t0, c0 = time.perf_counter(), time.process_time()
        xb, yb = x[idx].contiguous(memory_format=fmt), y[idx]
        loss = train_step(model, optimizer, scaler, criterion, xb, yb, dtype)
        losses.append(float(loss))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return losses, walls, cpus


def cpu_busy(seconds: float = 0.5) -> float:
    """Fraction of all CPUs busy during ``seconds`` (from /proc/stat; 0 where unavailable)."""
    def sample():
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        return sum(values), values[3] + values[4]          # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_quiet(limit_s: float, threshold: float = 0.15) -> None:
    """Wait (at most ``limit_s``) until other processes leave the CPUs idle."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and cpu_busy() > threshold:
        time.sleep(2.0)


def run_once(name, data, x, y, indices, args):
    """One run of technique ``name``: (windows/s wall, windows per CPU-second, losses)."""
    dtype, channels_last, compiled = TECHNIQUES[name]
    torch.manual_seed(args.seed)
    model = create_model(args.model, data.window, len(data.channels), len(data.class_names))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compiled:
        model = torch.compile(model)
    if name == "seed":
        losses, walls, cpus = seed_loop(model, x, y, indices, args)
    else:
        losses, walls, cpus = harkit_loop(model, x, y, indices, args, dtype, channels_last)
    windows = args.steps * args.batch_size
    return windows / sum(walls[args.warmup:]), windows / sum(cpus[args.warmup:]), losses


def print_table(results, args):
    """results: name -> list of (wall windows/s, windows per CPU-s, losses) per run."""
    def med(name, k):
        return statistics.median(r[k] for r in results[name])

    base = med("seed", 0) if "seed" in results else None
    steps = args.warmup + args.steps
    print(f"{'technique':<16} {'windows/s':>9} {'min-max':>11} {'x seed':>6} {'win/CPU-s':>9}  "
          + " ".join(f"{f'loss{i + 1}':>7}" for i in range(steps)))
    for name, runs in results.items():
        walls = [r[0] for r in runs]
        ratio = f"{med(name, 0) / base:6.2f}" if base else f"{'-':>6}"
        spread = f"{min(walls):.1f}-{max(walls):.1f}"
        print(f"{name:<16} {med(name, 0):9.2f} {spread:>11} {ratio} {med(name, 1):9.2f}  "
              + " ".join(f"{v:7.4f}" for v in runs[0][2]))
    if "seed" in results:
        ref = results["seed"][0][2]
        print("\nmax |loss - seed loss| over those steps (same batches, same initial weights):")
        for name, runs in results.items():
            diff = max(abs(a - b) for a, b in zip(runs[0][2], ref))
            print(f"  {name:<16} {diff:.2e}  (relative {diff / max(map(abs, ref)):.1e})")


def curve(args):
    """Full epochs with fit(): plain fp32 vs harkit's defaults (bf16 autocast + channels-last
    on an AMX CPU), same seed, the model's packaged config; metrics tables one after the other."""
    hparams = model_overrides(args.model)
    for label, options in (("fp32, contiguous", {"amp": False, "channels_last": False}),
                           ("harkit defaults", {})):
        print(f"\nfit(--epochs {args.curve}) {label}:")
        print(EPOCH_HEADER)
        with tempfile.TemporaryDirectory() as tmp:
            fit(args.data, args.model, out=Path(tmp) / "run", hparams=hparams, epochs=args.curve,
                seed=args.seed, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                log=print, on_epoch=lambda row: print(format_epoch_row(row), flush=True),
                **options)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="prepared folder (har prepare)")
    parser.add_argument("--model", default="resnet")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per run")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per technique (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--techniques", default=",".join(TECHNIQUES))
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each run wait up to S seconds for the CPUs to be idle "
                             "(for shared machines)")
    parser.add_argument("--curve", type=int, default=0, metavar="EPOCHS",
                        help="also train EPOCHS epochs with fit(), AMP off and on")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_prepared(args.data)
    print(f"{args.model} on {args.data}: windows {data.window} x {len(data.channels)}, batch "
          f"{args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps, median of "
          f"{args.runs} runs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    names = [n for n in args.techniques.split(",") if n]      # "" = only --curve
    for name in names:
        if name not in TECHNIQUES:
            parser.error(f"unknown technique {name!r}; choose from {', '.join(TECHNIQUES)}")
    train = data["train"]
    x, y = torch.from_numpy(train.x).unsqueeze(1), torch.from_numpy(train.y)
    indices = batch_indices(len(y), args.batch_size, args.warmup + args.steps, args.seed)
    results = {name: [] for name in names}
    for run in range(args.runs):                       # round-robin over the techniques
        for name in names:
            wait_for_quiet(args.wait_quiet)
            results[name].append(run_once(name, data, x, y, indices, args))
            wall, cpu, _ = results[name][-1]
            print(f"  run {run + 1} {name}: {wall:.2f} windows/s, {cpu:.2f} per CPU-s",
                  flush=True)
    if names:
        print()
        print_table(results, args)
    if args.curve:
        curve(args)


if __name__ == "__main__":
    main()
