"""``har bench``: how fast a model answers one window, per backend, and whether answers change.

:func:`run` measures, for each backend of :mod:`har.backends`:

* single-window latency (ms): ``runs`` timed calls of one window ``[1, 1, T, C]`` after
  ``warmup`` untimed ones; the backends take turns in :data:`ROUNDS` rounds (each round opens
  with :data:`ROUND_WARMUP` untimed calls, while the previous runtime's idle threads stop
  spinning), so a busy neighbour slows all of them alike; p50 / p90 / p99 / mean / min;
* throughput (windows/s) per batch size: ``batch / median call time`` over at least 3 calls
  and :data:`THROUGHPUT_MIN_S` seconds;
* achieved GFLOP/s (``2 * MACs / p50``), speed-up over ``eager``, model size (MB) and peak
  memory (MB above the resident size just before, while running the largest batch: host RSS,
  or CUDA allocated memory);
* with real windows (``data``): top-1 agreement (%) and max absolute logit difference against
  the fp32 eager model on the validation split (test, then train, when absent);
* the real-time budget: the stream yields ``sample_rate_hz / stride`` windows/s; ``headroom``
  is the single-window rate ``1000 / p50`` over that.

The result is a plain dict (documented in docs/FORMAT.md, "Benchmark JSON");
:func:`format_table` renders it for the terminal.
"""

from __future__ import annotations

import gc
import os
import platform
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from har import cpu
from har.backends import Runner, Setup, available, prepare, resolve_backends
from har.device import device_name, resolve_device
from har.metrics import classification_scores
from harkit import __version__
from harkit.errors import HarError

FORMAT_NAME, FORMAT_VERSION = "harkit.bench", 1
DEFAULT_BATCH_SIZES = (1, 32, 256)
DEFAULT_RUNS = 200
DEFAULT_WARMUP = 10
ROUNDS = 5
ROUND_WARMUP = 2
THROUGHPUT_MIN_S = 0.5
CALIBRATION_WINDOWS = 128    # int8 activation ranges (docs/BENCHMARKS.md, issue 14)
AGREEMENT_MAX_WINDOWS = 4096
AGREEMENT_TARGET = 99.5   # % top-1 agreement with fp32 eager for a backend to be recommended
#: The ``har export --format`` that deploys each backend (None: no file format of its own).
EXPORT_FORMATS = {"eager": "torchscript", "optimized": "torchscript", "bf16": "torchscript-bf16",
                  "onnx": "onnx", "int8": "onnx-int8", "cuda": "torchscript", "cuda-fp16": None}


def run(model: Optional[str] = None, *, checkpoint=None, data=None,
        window: Optional[int] = None, channels: Optional[int] = None,
        classes: Optional[int] = None, backend: str = "all",
        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, runs: int = DEFAULT_RUNS,
        warmup: int = DEFAULT_WARMUP, threads: Optional[int] = None, device: str = "cpu",
        seed: int = 0, compile: bool = True,
        log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Benchmark ``model`` (random weights, default ``resnet`` at 171 x 36, 12 classes) or
    ``checkpoint`` on ``backend`` (``"all"``, a name or a comma-separated list).

    ``data`` (a prepared folder) supplies real windows: the latency window, int8 calibration
    (train split) and the agreement set. ``threads`` sets torch's and ONNX Runtime's intra-op
    threads (default: torch's current count); ``device`` (``cpu``, ``cuda``, ``auto``) is where
    ``eager``/``optimized``/``bf16`` run. Backends named explicitly must be available
    (HarError naming the extra or device); with ``all`` the unavailable ones are skipped with
    the reason. ``compile`` lets ``optimized``/``bf16`` use ``torch.compile`` (seconds of
    compiling per batch size; TorchScript otherwise). Returns the figures as a plain dict.
    """
    log = log or (lambda line: None)
    _check_counts(runs, warmup, batch_sizes, threads)
    names = resolve_backends(backend)
    dev = resolve_device(device)
    names, skipped = available(names, dev, explicit=str(backend).strip() != "all")
    subject = Subject(model, checkpoint, data, window, channels, classes, seed)
    threads = int(threads or torch.get_num_threads())
    before_threads = torch.get_num_threads()
    load_before = _load_avg()
    torch.set_num_threads(threads)
    try:
        setup = Setup(dev, threads, subject.example, subject.calibration, subject.calibration_note,
                      compile=compile)
        runners, prepare_s = [], {}
        for name in names:
            log(f"preparing {name}")
            start = time.perf_counter()
            runners.append(prepare(name, subject.net, setup))
            prepare_s[name] = time.perf_counter() - start
        log(f"timing {len(runners)} backend(s): {runs} single windows each, "
            f"batches {', '.join(map(str, batch_sizes))}")
        latencies = measure_latency(runners, subject.example, runs, warmup)
        rows = []
        for runner in runners:
            log(f"throughput and agreement: {runner.name}")
            throughput, peak_mb = measure_throughput(runner, subject.pool, batch_sizes)
            row = _row(runner, latencies[runner.name], throughput, peak_mb, subject)
            row["prepare_s"] = round(prepare_s[runner.name], 3)
            row.update(subject.agreement(runner))
            rows.append(row)
    finally:
        torch.set_num_threads(before_threads)
    _relative(rows)
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "harkit_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": subject.config, "weights": subject.weights,
        "data": None if data is None else str(data), "input_shape": subject.input_shape,
        "parameters": subject.parameters, "macs": subject.macs,
        "gflop_per_window": round(2 * subject.macs / 1e9, 4),
        "stream": subject.stream, "agreement_on": subject.agreement_on,
        "reference_macro_f1": subject.reference_f1,
        "machine": _machine(dev, threads, load_before),
        "settings": {"runs": runs, "warmup": warmup, "rounds": min(ROUNDS, runs),
                     "batch_sizes": list(batch_sizes), "throughput_min_s": THROUGHPUT_MIN_S},
        "backends": rows, "skipped": skipped,
        "best": min(rows, key=lambda r: r["latency_ms"]["p50"])["backend"] if rows else None,
        "recommended": recommend(rows),
    }


def recommend(rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The backend to deploy: the fastest single window (p50) among those whose top-1
    agreement with fp32 eager is >= :data:`AGREEMENT_TARGET` %. Without an agreement set
    (no ``--data``) only the fp32 backends qualify, which compute the same function.
    ``{"backend", "export_format", "why"}``; ``export_format`` is what ``har export --format``
    writes for it (None for a backend with no file format); None without rows."""
    def qualifies(row):
        if row["agreement_top1"] is None:
            return row["precision"] == "fp32"
        return row["agreement_top1"] >= AGREEMENT_TARGET

    fit = [r for r in rows if qualifies(r)]
    if not fit:
        return None
    best = min(fit, key=lambda r: r["latency_ms"]["p50"])
    left = sorted({r["backend"] for r in rows} - {r["backend"] for r in fit})
    measured = best["agreement_top1"] is not None
    why = (f"fastest single window ({best['latency_ms']['p50']:.2f} ms p50) with top-1 "
           f"agreement >= {AGREEMENT_TARGET:g} % vs fp32 eager" if measured else
           f"fastest fp32 single window ({best['latency_ms']['p50']:.2f} ms p50); pass --data "
           "to let reduced precisions qualify by their agreement")
    if left and measured:
        why += f"; below the agreement target: {', '.join(left)}"
    return {"backend": best["backend"], "export_format": EXPORT_FORMATS.get(best["backend"]),
            "why": why}


# --------------------------------------------------------------------------- measuring
def measure_latency(runners: List[Runner], window: torch.Tensor, runs: int, warmup: int
                    ) -> Dict[str, np.ndarray]:
    """Milliseconds of ``runs`` single-window calls per runner (after ``warmup`` calls each),
    the runners taking turns in ``ROUNDS`` rounds; garbage collection is paused while timing."""
    for runner in runners:
        for _ in range(warmup):
            runner(window)
    rounds = min(ROUNDS, runs)
    chunks = [runs // rounds + (i < runs % rounds) for i in range(rounds)]
    times: Dict[str, List[float]] = {r.name: [] for r in runners}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in chunks:
            for runner in runners:
                record = times[runner.name]
                for _ in range(ROUND_WARMUP):
                    runner(window)
                for _ in range(chunk):
                    start = time.perf_counter()
                    runner(window)
                    record.append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: np.asarray(t) * 1e3 for name, t in times.items()}


def measure_throughput(runner: Runner, pool: torch.Tensor, batch_sizes: Sequence[int]):
    """``({batch: windows/s}, peak_mb)``: per batch size, ``batch / median`` call time over
    >= 3 calls and >= THROUGHPUT_MIN_S s after one warm-up call; the peak memory (MB) while
    running the largest batch."""
    result, peak_mb = {}, None
    largest = max(batch_sizes)
    for batch_size in batch_sizes:
        batch = _tile(pool, batch_size)
        if batch_size == largest:
            memory = _PeakMemory(runner.device)
        runner(batch)
        times: List[float] = []
        begin = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - begin < THROUGHPUT_MIN_S
                                 and len(times) < 1000):
            start = time.perf_counter()
            runner(batch)
            times.append(time.perf_counter() - start)
        if batch_size == largest:
            peak_mb = memory.peak_mb()
        result[str(batch_size)] = round(batch_size / float(np.median(times)), 2)
    return result, peak_mb


def _tile(pool: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``batch_size`` windows ``[B, 1, T, C]`` cycling through ``pool``."""
    index = torch.arange(batch_size) % pool.shape[0]
    return pool[index].contiguous()


class _PeakMemory:
    """Peak memory above the current level, in MB: CUDA allocated bytes, or host RSS
    (Linux: the high-water mark reset through /proc/self/clear_refs); None when unknown."""

    def __init__(self, device: str) -> None:
        self.device = device
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset VmHWM to the current RSS
            self.base = _status_kb("VmRSS")
        except OSError:
            self.base = None

    def peak_mb(self) -> Optional[float]:
        if self.base is None:
            return None
        if self.device == "cuda":
            torch.cuda.synchronize()
            return round((torch.cuda.max_memory_allocated() - self.base) / 2**20, 1)
        peak = _status_kb("VmHWM")
        return None if peak is None else round(max(peak - self.base, 0) / 1024, 1)


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- the model
class Subject:
    """The model under test (``net``, fp32 eval), its input shape, stream budget and windows:
    ``pool`` and ``example`` for timing, ``calibration`` ``[N, T, C]`` for int8, and the
    agreement set (:meth:`agreement`); real windows from ``data``, else random. Also what
    ``har export`` checks its reduced-precision files with."""

    def __init__(self, model, checkpoint, data, window, channels, classes, seed) -> None:
        from har.models import count_macs, count_parameters

        prepared = None
        if data is not None:
            from data_prep.store import load_prepared

            prepared = load_prepared(data, mmap=True)
        if checkpoint is not None:
            self._from_checkpoint(checkpoint, model, window, channels, classes, prepared, data)
        else:
            self._random(model or "resnet", window, channels, classes, prepared, data)
        steps, chans = self.input_shape[1:]
        self._probe(steps, chans)
        self.parameters = count_parameters(self.net)
        self.macs = count_macs(self.net, steps, chans)
        self._windows(prepared, seed, steps, chans)

    def _from_checkpoint(self, checkpoint, model, window, channels, classes, prepared, data):
        from har.checkpoint import load_checkpoint, model_from_checkpoint

        given = [o for o, v in (("--model", model), ("--window", window),
                                ("--channels", channels), ("--classes", classes)) if v]
        if given:
            raise HarError(f"{'/'.join(given)} cannot be combined with --checkpoint, which fixes "
                           "the model and its input shape; drop them")
        ckpt = load_checkpoint(checkpoint)
        self.net = model_from_checkpoint(ckpt, torch.device("cpu"))
        self.config, self.weights = dict(ckpt["model"]), str(checkpoint)
        self.input_shape = [int(v) for v in ckpt["input_shape"]]
        pre = ckpt.get("preprocessing") or {}
        self.stream = _stream(pre.get("sample_rate_hz"), pre.get("stride"), "checkpoint",
                              self.input_shape[1])
        if prepared is not None:
            shape = [1, prepared.window, len(prepared.channels)]
            if shape != self.input_shape or prepared.channels != list(ckpt["channels"]):
                raise HarError(f"--data {data} holds windows {shape[1:]} of other channels than "
                               f"the checkpoint's {self.input_shape[1:]} ([T, C]); pass the "
                               "prepared folder it was trained on")

    def _random(self, name, window, channels, classes, prepared, data):
        from har.models import create_model, list_models

        if name not in list_models():
            raise HarError(f"--model {name!r} is unknown; choose one of "
                           f"{', '.join(list_models())}")
        if prepared is not None:
            found = {"--window": prepared.window, "--channels": len(prepared.channels),
                     "--classes": len(prepared.class_names)}
            for option, value in (("--window", window), ("--channels", channels),
                                  ("--classes", classes)):
                if value is not None and value != found[option]:
                    raise HarError(f"{option} {value} does not match --data {data}, which has "
                                   f"{found[option]}; drop {option}")
            window, channels, classes = found.values()
        window = 171 if window is None else window
        channels = 36 if channels is None else channels
        classes = 12 if classes is None else classes
        try:
            self.net = create_model(name, window, channels, classes).eval()
        except HarError as exc:
            raise HarError(f"--window {window} --channels {channels} --classes {classes}: "
                           f"{exc}") from None
        self.config, self.weights = dict(self.net.config), "random"
        self.input_shape = [1, window, channels]
        meta = prepared.meta if prepared is not None else None
        if meta is not None:
            self.stream = _stream(meta.get("sample_rate_hz"), meta.get("stride"), "data", window)
        else:
            self.stream = _stream(None, None, "assumed", window)

    def _probe(self, steps: int, chans: int) -> None:
        try:
            with torch.no_grad():
                self.net(torch.zeros(1, 1, steps, chans))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HarError(f"--window {steps}: {self.config['name']} cannot take windows of "
                           f"[{steps}, {chans}] ({first}); use longer windows") from None

    def _windows(self, prepared, seed: int, steps: int, chans: int) -> None:
        """``pool`` [N, 1, T, C] for latency/throughput, ``calibration`` [N, T, C] (int8),
        the agreement set and its fp32 eager reference logits."""
        rng = np.random.default_rng(seed)
        splits = {} if prepared is None else {k: s for k, s in prepared.splits.items() if len(s)}
        self.agreement_on, self._reference, self._agree_x = None, None, None
        self._reference_f1 = None
        if splits:
            name = next(s for s in ("val", "test", "train") if s in splits)
            x = np.array(splits[name].x[:AGREEMENT_MAX_WINDOWS], dtype=np.float32)  # a copy
            self._agree_x = torch.from_numpy(x).unsqueeze(1)
            self._agree_y = np.asarray(splits[name].y[:AGREEMENT_MAX_WINDOWS])
            with torch.no_grad():
                self._reference = _batched(self.net, self._agree_x)
            self._reference_f1 = _macro_f1(self._agree_y, self._reference)
            self.agreement_on = {"split": name, "windows": int(x.shape[0])}
            self.pool = self._agree_x[:256]
            cal_split = "train" if "train" in splits else name
            cal = splits[cal_split].x
            pick = np.sort(rng.choice(len(cal), min(CALIBRATION_WINDOWS, len(cal)), replace=False))
            self.calibration = np.asarray(cal[pick], dtype=np.float32)
            self.calibration_note = (f"calibrated on {len(pick)} random {cal_split} windows")
        else:
            self.pool = torch.from_numpy(
                rng.standard_normal((64, 1, steps, chans)).astype(np.float32))
            self.calibration = self.pool[:, 0].numpy()
            self.calibration_note = ("calibrated on 64 random N(0, 1) windows; pass --data for "
                                     "real ones")
        self.example = self.pool[:1].clone()

    @property
    def reference_f1(self) -> Optional[float]:
        """fp32 eager's macro F1 on the agreement windows (None without data)."""
        return None if self._reference_f1 is None else round(self._reference_f1, 5)

    def agreement(self, runner: Runner) -> Dict[str, Any]:
        """``agreement_top1`` (%) and ``max_abs_logit_diff`` vs fp32 eager, ``macro_f1`` on the
        windows' labels and ``macro_f1_change`` vs fp32 eager's; None without data."""
        if self._agree_x is None:
            return dict.fromkeys(("agreement_top1", "max_abs_logit_diff", "macro_f1",
                                  "macro_f1_change"))
        logits = _batched(runner, self._agree_x)
        same = (logits.argmax(1) == self._reference.argmax(1)).float().mean().item()
        f1 = _macro_f1(self._agree_y, logits)
        return {"agreement_top1": round(100.0 * same, 3),
                "max_abs_logit_diff": float((logits - self._reference).abs().max()),
                "macro_f1": round(f1, 5), "macro_f1_change": round(f1 - self._reference_f1, 5)}


def _macro_f1(y: np.ndarray, logits: torch.Tensor) -> float:
    return classification_scores(y, logits.argmax(1).numpy())["f1_macro"]


def _batched(fn, x: torch.Tensor, size: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i:i + size]).float() for i in range(0, x.shape[0], size)])


def _stream(rate_hz, stride, source: str, window: int) -> Dict[str, Any]:
    """Windows per second a live stream yields: ``rate_hz / stride``. ``assumed``: the PAMAP2
    defaults of configs/pamap2.toml (100 Hz / 3, 50 % overlap)."""
    if not rate_hz or not stride:
        from data_prep.config import load_prepare_config
        from data_prep.datasets import pamap2

        config = load_prepare_config(None, {}, "pamap2")
        rate_hz = pamap2.SAMPLE_RATE_HZ / config.downsample
        stride, source = max(1, window // 2), "assumed"
    return {"sample_rate_hz": round(float(rate_hz), 4), "stride": int(stride),
            "windows_per_s": round(float(rate_hz) / int(stride), 5),
            "window_interval_ms": round(1000.0 * int(stride) / float(rate_hz), 3),
            "source": source}


# --------------------------------------------------------------------------- the result
def _row(runner: Runner, ms: np.ndarray, throughput, peak_mb, subject: Subject
         ) -> Dict[str, Any]:
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    single = 1000.0 / p50
    return {
        "backend": runner.name, "device": runner.device, "precision": runner.precision,
        "engine": runner.engine, "notes": [n for n in runner.notes if n],
        "latency_ms": {"p50": round(p50, 4), "p90": round(p90, 4), "p99": round(p99, 4),
                       "mean": round(float(ms.mean()), 4), "min": round(float(ms.min()), 4)},
        "timed_runs": int(ms.size), "single_window_per_s": round(single, 2),
        "throughput": throughput,
        "gflops": round(2 * subject.macs / (p50 / 1000.0) / 1e9, 2),
        "gflops_best_batch": round(2 * subject.macs * max(throughput.values()) / 1e9, 2),
        "headroom": round(single / subject.stream["windows_per_s"], 1),
        "model_mb": round(runner.size_bytes / 2**20, 2), "peak_memory_mb": peak_mb,
    }


def _relative(rows: List[Dict[str, Any]]) -> None:
    """``speedup_vs_eager``: eager's p50 over each backend's (None without an eager row)."""
    eager = next((r for r in rows if r["backend"] == "eager"), None)
    for row in rows:
        row["speedup_vs_eager"] = (None if eager is None else
                                   round(eager["latency_ms"]["p50"] / row["latency_ms"]["p50"], 2))


def _load_avg() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _machine(device: torch.device, threads: int, load_before) -> Dict[str, Any]:
    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {"cpu": device_name(torch.device("cpu")), "cpu_class": cpu.cpu_class(),
            "cpu_flags": cpu.reported_flags(),
            "cores": os.cpu_count(), "threads": threads, "device": str(device),
            "gpu": device_name(device) if device.type == "cuda" else None,
            "load_avg_before": load_before, "load_avg_after": _load_avg(),
            "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": ort_version}


def _check_counts(runs, warmup, batch_sizes, threads) -> None:
    for option, value, minimum in (("--runs", runs, 1), ("--warmup", warmup, 0),
                                   ("--threads", 1 if threads is None else threads, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise HarError(f"{option} {value!r} is invalid; pass an integer >= {minimum}")
    sizes = list(batch_sizes) if isinstance(batch_sizes, (list, tuple)) else None
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise HarError(f"--batch-sizes {batch_sizes!r} is invalid; pass comma-separated "
                       "integers >= 1, e.g. 1,32,256")


# --------------------------------------------------------------------------- the table
def format_table(result: Dict[str, Any]) -> str:
    """The figures as a fixed-width table with a header (model, machine) and a footer (budget,
    skipped backends)."""
    shape, stream, mach = result["input_shape"], result["stream"], result["machine"]
    sizes = [str(b) for b in result["settings"]["batch_sizes"]]
    lines = [
        f"{result['model']['name']} ({result['weights']} weights): window [{shape[1]}, "
        f"{shape[2]}] -> {result['model']['num_classes']} classes, {result['parameters']:,} "
        f"parameters, {result['macs'] / 1e6:,.1f} M MACs ({result['gflop_per_window']:.3f} "
        "GFLOP) per window",
        f"{mach['cpu']} (class {mach.get('cpu_class', '?')}), {mach['threads']} thread(s), "
        f"load {_load_text(mach)}; "
        f"{result['settings']['runs']} timed single windows per backend",
        "",
    ]
    head = (f"{'backend':<10} {'device':<6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
            f"{'x eager':>7} " + " ".join(f"{'win/s@' + b:>10}" for b in sizes) +
            f" {'GFLOP/s':>8} {'peak MB':>8} {'agree %':>8} {'dF1 macro':>9} {'max|dlogit|':>11} "
            f"{'headroom':>9}")
    lines += [head, "-" * len(head)]
    for row in result["backends"]:
        lat = row["latency_ms"]
        lines.append(
            f"{row['backend']:<10} {row['device']:<6} {lat['p50']:>8.2f} {lat['p90']:>8.2f} "
            f"{lat['p99']:>8.2f} {_num(row['speedup_vs_eager'], '{:.2f}'):>7} "
            + " ".join(f"{row['throughput'][b]:>10,.1f}" for b in sizes)
            + f" {row['gflops']:>8.1f} {_num(row['peak_memory_mb'], '{:.0f}'):>8} "
            f"{_num(row['agreement_top1'], '{:.2f}'):>8} "
            f"{_num(row['macro_f1_change'], '{:+.4f}'):>9} "
            f"{_num(row['max_abs_logit_diff'], '{:.4f}'):>11} {row['headroom']:>8,.0f}x")
    lines.append("")
    lines.append(f"real-time budget: {stream['sample_rate_hz']:g} Hz / stride {stream['stride']} "
                 f"= {stream['windows_per_s']:.3f} windows/s (one every "
                 f"{stream['window_interval_ms'] / 1000:.2f} s, {stream['source']}); headroom = "
                 "single-window rate (1000 / p50) over it")
    if result["agreement_on"]:
        on = result["agreement_on"]
        lines.append(f"agreement: top-1, macro F1 change and max |logit difference| vs fp32 "
                     f"eager on {on['windows']} {on['split']} windows (fp32 macro F1 "
                     f"{result['reference_macro_f1']:.4f})")
    else:
        lines.append("agreement: not measured (pass --data with a prepared folder)")
    for row in result["backends"]:
        lines.append(f"  {row['backend']}: {row['precision']}, {row['engine']}"
                     + "".join(f"; {n}" for n in row["notes"]))
    for skip in result["skipped"]:
        lines.append(f"skipped {skip['backend']}: {skip['reason']}")
    if result["best"]:
        lines.append(f"fastest single window: {result['best']}")
    rec = result.get("recommended")
    if rec:
        how = (f"; har export --format {rec['export_format']} writes it (or --format auto)"
               if rec["export_format"] else "")
        lines.append(f"recommended on this machine: {rec['backend']} ({rec['why']}){how}")
    return "\n".join(lines)


def _num(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _load_text(mach: Dict[str, Any]) -> str:
    before, after = mach.get("load_avg_before"), mach.get("load_avg_after")
    if not before:
        return "unknown"
    return f"{before[0]:.2f} before, {after[0]:.2f} after (1-min average)" if after else \
        f"{before[0]:.2f}"
