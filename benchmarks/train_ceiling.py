"""Where one training step's time goes, and how close its convolutions come to the CPU's peak.

Profiles one fp32 channels-last training step (AdamW) of ``--model`` at ``--batch-size`` on
random windows with ``torch.profiler`` after two warm-up steps, and prints: the step's seconds
and windows/s (median of 3), the training GFLOP per step (3 x 2 x forward MACs x batch: forward,
input gradient, weight gradient), the GFLOP/s overall and inside the convolutions, and the
operators that take the most time. Compare the convolutions' GFLOP/s with the FMA peak:
cores x FMA units (2) x fp32 lanes (8 for AVX2, 16 for AVX-512) x 2 FLOP x GHz.

Run it under an ISA cap to see another CPU class's kernels on this CPU::

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/train_ceiling.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from har.models import count_macs, create_model  # noqa: E402

CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward",
            "aten::mkldnn_convolution_backward")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", type=int, default=171)
    ap.add_argument("--channels", type=int, default=36)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = create_model(args.model, args.window, args.channels, 12)
    net = net.to(memory_format=torch.channels_last).train()
    macs = count_macs(net, args.window, args.channels)
    opt = torch.optim.AdamW(net.parameters(), lr=5e-4)
    x = torch.randn(args.batch_size, 1, args.window, args.channels)
    x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 12, (args.batch_size,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    with profile() as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_OPS) / 1e6
    flop = 3 * 2 * macs * args.batch_size
    print(f"{args.model}, batch {args.batch_size}, {args.threads} threads: step {seconds:.2f} s "
          f"({args.batch_size / seconds:.1f} windows/s), {flop / 1e9:.0f} GFLOP per step, "
          f"{flop / seconds / 1e9:.1f} GFLOP/s overall")
    print(f"convolutions: {100 * conv / total:.0f} % of the profiled step, "
          f"{flop / conv / 1e9:.1f} GFLOP/s inside them")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
        print(f"  {e.key:44s} {e.self_cpu_time_total / 1e6:7.3f} s "
              f"({100 * e.self_cpu_time_total / 1e6 / total:4.1f} %)")


if __name__ == "__main__":
    main()
