"""``prepare``: raw PAMAP2 recordings → a prepared folder of windows (see docs/FORMAT.md)."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from data_prep import pamap2, store, transform, windows
from data_prep.config import PrepareConfig
from data_prep.read import (
    ParseCache,
    Recording,
    SignalBuffers,
    default_cache_dir,
    discover,
    read_recording,
)
from data_prep.splits import SPLITS, apply_normalization, assign_subjects, fit_normalization
from data_prep.transform import Preprocessing
from harkit import __version__
from harkit.errors import HarError
from harkit.files import atomic_dir, write_json
from harkit.progress import progress_bar


@dataclass
class _Collected:
    """Windows gathered for one split, plus drop counters."""

    x: List[np.ndarray] = field(default_factory=list)
    y: List[np.ndarray] = field(default_factory=list)
    subject: List[np.ndarray] = field(default_factory=list)
    dropped_nan: int = 0


@dataclass
class _Stats:
    short_runs: int = 0
    short_run_rows: int = 0
    longest_run_steps: int = 0
    rows_transient: int = 0
    rows_unused_activity: int = 0


def prepare(path, config: PrepareConfig, *, force: bool = False, cache_dir: Optional[Path] = None,
            use_cache: bool = True, progress: bool = False) -> dict:
    """Prepare the recordings at ``path`` with ``config``; return the written meta.json
    (plus a ``timing`` entry in seconds, which is not written).

    Built in a temp folder beside ``config.out`` and renamed at the end; an existing folder is
    refused unless ``force``.
    """
    t0 = time.perf_counter()
    out = Path(config.out)
    if out.exists() and not force:
        raise HarError(f"{out} already exists; pass --force to replace it or choose another --out")
    sources = discover(Path(path), config.include_optional)
    subjects = assign_subjects({s.subject for s in sources}, config.val_subjects,
                               config.test_subjects)
    split_of = {s: name for name, members in subjects.items() for s in members}
    cache = ParseCache((cache_dir or default_cache_dir()) if use_cache else None)

    collected = {name: _Collected() for name in SPLITS}
    stats = _Stats()
    source_info = []
    t_parse = 0.0
    for rec, seconds in _read_all(sources, cache, progress):
        t_parse += seconds
        source_info.append({"file": rec.source.name, "folder": rec.source.folder,
                            "subject": rec.source.subject, "size": rec.source.size,
                            "sha256": rec.sha256, "rows": rec.rows})
        _windows_of(rec, config, collected[split_of[rec.source.subject]], stats)
        rec.release()
    cache.flush()
    t_windows = time.perf_counter() - t0

    arrays = _stack(collected, config, stats)
    mean = std = None
    normalize = None
    if config.normalize:
        mean, std = fit_normalization(arrays["train"][0])
        normalize = lambda x: apply_normalization(x, mean, std)  # noqa: E731
    meta = _meta(config, subjects, arrays, collected, stats, source_info, mean, std)
    with atomic_dir(out, force) as tmp:
        for split, (x, y, subj) in arrays.items():
            store.write_split(tmp, split, x, y, subj, before_write=normalize)
        write_json(tmp / "meta.json", meta)
    total = time.perf_counter() - t0
    return {**meta, "timing": {"read_s": round(t_parse, 3), "windows_s": round(t_windows, 3),
                               "total_s": round(total, 3)}}


def _read_all(sources, cache: ParseCache, progress: bool):
    """Yield ``(recording, seconds)`` in source order; the next file is read while the
    caller windows the current one (pyarrow and hashing release the GIL)."""
    buffers = SignalBuffers()

    def timed(source):
        t = time.perf_counter()
        return read_recording(source, cache, buffers), time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(timed, s) for s in sources]
        try:
            with progress_bar(futures, label="reading", enabled=progress) as bar:
                for fut in bar:
                    yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()


def _windows_of(rec: Recording, cfg: PrepareConfig, out: _Collected, stats: _Stats) -> None:
    """Cut the windows of one recording into ``out``. Windows come from runs (one activity, no
    timestamp gap), so they never cross either; windows still holding NaN (dropouts at a
    segment's edge, which gap filling does not extrapolate) are dropped and counted."""
    prep = Preprocessing.of(cfg)
    labels = {aid: label for label, aid in enumerate(cfg.activity_ids)}
    act = rec.activity
    stats.rows_transient += int(np.count_nonzero(act == pamap2.TRANSIENT_ID))
    stats.rows_unused_activity += int(np.count_nonzero(~np.isin(act, cfg.activity_ids + [0])))
    for seg in windows.segments(rec.timestamp_s, pamap2.SAMPLE_RATE_HZ):
        for run in windows.runs(act, seg, cfg.activity_ids):
            cut = transform.cut(rec.signals, run.start, run.stop, prep)
            stats.longest_run_steps = max(stats.longest_run_steps, cut.steps)
            if cut.steps < cfg.window:
                stats.short_runs += 1
                stats.short_run_rows += run.rows
                continue
            out.dropped_nan += cut.dropped_nan
            n = len(cut)
            if n:
                out.x.append(cut.x)
                out.y.append(np.full(n, labels[run.activity], dtype=np.int64))
                out.subject.append(np.full(n, rec.source.subject, dtype=np.int64))


def _stack(collected: Dict[str, _Collected], cfg: PrepareConfig, stats: _Stats) -> dict:
    """``{split: (x_parts, y, subject)}``: each split's windows as the list of per-run arrays
    ``[n_i, T, C]`` (normalized and written piece by piece: no copy of the whole split) and its
    labels and subjects concatenated; fail with advice when nothing fits a window."""
    total = sum(len(c.y) for c in collected.values())
    if total == 0 or not collected["train"].x:
        rate = cfg.rate_hz
        if stats.longest_run_steps < cfg.window:
            raise HarError(
                f"--window {cfg.window} is longer than every activity run (longest: "
                f"{stats.longest_run_steps} steps = {stats.longest_run_steps / rate:.1f} s at "
                f"{rate:.1f} Hz); lower --window or --downsample")
        raise HarError("the train split has no complete window (all hold missing values or "
                       "the train subjects lack the chosen activities); choose other "
                       "--val-subjects/--test-subjects or a shorter --window")
    arrays = {}
    channels = len(cfg.channels)
    for split, c in collected.items():
        if split != "train" and not getattr(cfg, f"{split}_subjects"):
            continue
        if c.x:
            arrays[split] = (c.x, np.concatenate(c.y), np.concatenate(c.subject))
        else:
            arrays[split] = ([np.empty((0, cfg.window, channels), np.float32)],
                             np.empty(0, np.int64), np.empty(0, np.int64))
    return arrays


def _meta(cfg: PrepareConfig, subjects, arrays, collected, stats: _Stats, sources, mean, std
          ) -> dict:
    names = [pamap2.ACTIVITIES[a] for a in cfg.activity_ids]
    splits = {}
    for split, (x, y, _) in arrays.items():
        counts = Counter(y.tolist())
        splits[split] = {
            "subjects": subjects[split],
            "windows": int(y.shape[0]),
            "per_class": {names[k]: int(counts.get(k, 0)) for k in range(len(names))},
        }
    return {
        "format": store.FORMAT_NAME,
        "format_version": store.FORMAT_VERSION,
        "dataset": "pamap2",
        "harkit_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": {**cfg.to_dict(), "stride": cfg.stride},
        "classes": [{"label": i, "activity_id": a, "name": n}
                    for i, (a, n) in enumerate(zip(cfg.activity_ids, names))],
        "channels": cfg.channels,
        "source_rate_hz": pamap2.SAMPLE_RATE_HZ,
        "sample_rate_hz": cfg.rate_hz,
        "window": cfg.window,
        "stride": cfg.stride,
        "window_s": cfg.window / cfg.rate_hz,
        "splits": splits,
        "dropped": {
            "windows_with_missing_values": {s: collected[s].dropped_nan for s in arrays},
            "runs_shorter_than_window": stats.short_runs,
            "rows_in_short_runs": stats.short_run_rows,
            "rows_transient": stats.rows_transient,
            "rows_unused_activities": stats.rows_unused_activity,
        },
        "normalization": {
            "applied": bool(cfg.normalize),
            "fitted_on": "train" if cfg.normalize else None,
            "mean": None if mean is None else [float(v) for v in mean],
            "std": None if std is None else [float(v) for v in std],
        },
        "sources": sources,
    }
