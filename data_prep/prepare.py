"""``prepare``: raw recordings of any dataset → a prepared folder of windows (docs/FORMAT.md).

The shared pipeline after an adapter's parse, for every recordings dataset: read each file
(:func:`data_prep.read.read_source`: parse cache, ``--rate`` resampling, gap filling), cut runs
of one label inside gap-free segments, window them (:func:`data_prep.transform.cut`), group the
windows by subject, assign subjects to splits, fit normalization on the train subjects only, and
write the folder atomically. Pre-cut archives (``kind = "windows"``) hand over their splits
directly and share the normalization and the writing.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from data_prep import resample, store, windows
from data_prep.cache import ParseCache, default_cache_dir
from data_prep.datasets import get_dataset
from data_prep.datasets.base import ClassSpec, Dataset, Recording, is_number
from data_prep.pages import small_pages
from data_prep.read import SignalBuffers, read_source
from data_prep.splits import (
    SPLITS,
    apply_normalization,
    assign_subjects,
    fit_normalization,
    held_out,
    normalization_of,
    window_moments,
)
from data_prep.transform import Preprocessing, StreamedWindows, Windows, cut_runs
from harkit import __version__
from harkit.errors import HarError
from harkit.files import atomic_dir, write_json
from harkit.progress import progress_bar

#: Recordings whose nominal rates differ by more than this share need ``--rate``.
RATE_TOLERANCE = 0.01


@dataclass
class _Pieces:
    """Windows of one subject: per run, its rows and window starts, and its label (class
    name). The windows themselves are cut only when written (:class:`StreamedWindows`)."""

    x: List[Windows] = field(default_factory=list)
    label: List[str] = field(default_factory=list)
    dropped_nan: int = 0


@dataclass
class _Stats:
    short_runs: int = 0
    short_run_rows: int = 0
    longest_run_steps: int = 0
    rows_excluded: int = 0
    rows_other_labels: int = 0
    rows_without_label: int = 0
    windows_at_run_edges: int = 0
    other_labels: Counter = field(default_factory=Counter)
    records_skipped: Counter = field(default_factory=Counter)


def prepare(path, config, *, force: bool = False, cache_dir: Optional[Path] = None,
            use_cache: bool = True, progress: bool = False) -> dict:
    """Prepare the data at ``path`` with ``config`` (the adapter's options); return the written
    meta.json (plus a ``timing`` entry in seconds, which is not written).

    Built in a temp folder beside ``config.out`` and renamed at the end; an existing folder is
    refused unless ``force``. Huge pages are off meanwhile (:func:`data_prep.pages.small_pages`).
    """
    with small_pages():
        return _prepare(path, config, force, cache_dir, use_cache, progress)


def _prepare(path, config, force: bool, cache_dir: Optional[Path], use_cache: bool,
             progress: bool) -> dict:
    t0 = time.perf_counter()
    out = Path(config.out)
    if out.exists() and not force:
        raise HarError(f"{out} already exists; pass --force to replace it or choose another --out")
    adapter = get_dataset(config.dataset)
    config = adapter.resolve(Path(path), config)
    if adapter.kind == "windows":
        return _prepare_windows(adapter, Path(path), config, force, progress, t0)
    sources = adapter.sources(Path(path), config)
    key = adapter.cache_key(config) + (f"rate{config.rate:g}" if config.rate else "")
    cache = ParseCache((cache_dir or default_cache_dir()) if use_cache else None, adapter.name,
                       key)
    classes = adapter.classes(config)
    wanted = None if classes is None else {c.name for c in classes}
    channels = adapter.channels(config)
    per_subject: Dict[Any, _Pieces] = defaultdict(_Pieces)
    stats, source_info, rates = _Stats(), [], {}
    prep = columns = None
    t_parse = 0.0
    not_train = held_out(config.val_subjects, config.test_subjects)
    train_moments = []     # per train recording: the fit is summed while the next file parses
    for rec, seconds in _read_all(adapter, sources, config, cache, progress):
        t_parse += seconds
        source_info.append(_source_entry(rec))
        stats.records_skipped.update(rec.dropped)
        rates[rec.name] = rec.rate_hz
        if prep is None:
            names = [c.name for c in channels] if channels else list(rec.channels)
            prep = Preprocessing(tuple(names), rec.rate_hz, config.downsample, config.antialias,
                                 config.window, config.stride)
        _check_rate(rates, rec, prep)
        columns = prep.columns(rec.channels, rec.name)
        pieces = per_subject[rec.subject]
        before = len(pieces.x)
        _windows_of(rec, prep, columns, adapter, wanted, pieces, stats)
        if config.normalize and str(rec.subject) not in not_train and len(pieces.x) > before:
            train_moments.append(window_moments(
                StreamedWindows(pieces.x[before:], prep.window, len(prep.channels))))
        rec.release()
    cache.flush()
    if prep is None:
        raise HarError(f"{path}: no recording to prepare; check the path and the options")
    if classes is None:
        classes = _classes_from_data(per_subject)
    t_windows = time.perf_counter() - t0

    subjects = assign_subjects(per_subject, config.val_subjects, config.test_subjects)
    arrays = _split_arrays(per_subject, subjects, classes, config, prep, stats)
    mean = std = None
    normalize = None
    if config.normalize:
        assert sum(n for n, _, _ in train_moments) == len(arrays["train"][1]) * prep.window
        mean, std = normalization_of(train_moments)
        normalize = lambda x: apply_normalization(x, mean, std)  # noqa: E731
    channel_specs = channels or [c for c in adapter.all_channels() if c.name in prep.channels]
    meta = _meta(adapter, config, subjects, arrays, per_subject, stats, source_info, mean, std,
                 classes, channel_specs or [], prep)
    with atomic_dir(out, force) as tmp:
        for split, (x, y, subj) in arrays.items():
            store.write_split(tmp, split, x, y, subj, before_write=normalize)
        write_json(tmp / "meta.json", meta)
    total = time.perf_counter() - t0
    return {**meta, "timing": {"read_s": round(t_parse, 3), "windows_s": round(t_windows, 3),
                               "total_s": round(total, 3)}}


def _read_all(adapter: Dataset, sources, config, cache: ParseCache, progress: bool):
    """Yield ``(recording, seconds)`` in source order; the next file is read while the
    caller windows the current one (pyarrow and hashing release the GIL)."""
    buffers = SignalBuffers()

    def timed(source):
        t = time.perf_counter()
        recs = read_source(adapter, source, config, cache, buffers, config.rate)
        return recs, time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(timed, s) for s in sources]
        try:
            with progress_bar(futures, label="reading", enabled=progress) as bar:
                for fut in bar:
                    recs, seconds = fut.result()
                    for i, rec in enumerate(recs):
                        yield rec, seconds if i == 0 else 0.0
        finally:
            for fut in futures:
                fut.cancel()


def _check_rate(rates: Dict[str, float], rec: Recording, prep: Preprocessing) -> None:
    if abs(rec.rate_hz - prep.rate_hz) > RATE_TOLERANCE * prep.rate_hz:
        first = next(iter(rates))
        raise HarError(f"{rec.name} is sampled at {rec.rate_hz:.4g} Hz but {first} at "
                       f"{prep.rate_hz:.4g} Hz; pass --rate HZ to resample every recording to "
                       "one rate")


def _windows_of(rec: Recording, prep: Preprocessing, columns, adapter: Dataset, wanted,
                out: _Pieces, stats: _Stats) -> None:
    """Cut the windows of one recording into ``out``. Windows come from runs (one label, no
    timestamp gap), so they never cross either; windows still holding NaN (dropouts at a
    segment's edge, which gap filling does not extrapolate) or ±inf are dropped and counted."""
    names = rec.label_names
    starts, stops = windows.run_bounds(rec.labels, rec.timestamp_s, rec.rate_hz)
    codes = rec.labels[starts]
    counts = np.bincount(codes + 1, weights=stops - starts, minlength=len(names) + 1)
    stats.rows_without_label += int(counts[0])                 # [no label, code 0, ...]
    keep = []
    for code, name in enumerate(names):
        n = int(counts[code + 1])
        if not n:
            continue
        if name in adapter.excluded:
            stats.rows_excluded += n
        elif wanted is not None and name not in wanted:
            stats.rows_other_labels += n
            stats.other_labels[name] += n
        else:
            keep.append(code)
    kept = np.zeros(len(names) + 1, bool)            # by code + 1 (-1: no label)
    kept[np.asarray(keep, np.int64) + 1] = True
    chosen = kept[codes + 1]
    starts, stops, codes = starts[chosen], stops[chosen], codes[chosen]
    reach = resample.REACH_STEPS if prep.reach_rows else 0
    cuts = cut_runs(rec.signals, starts, stops, prep, columns)
    if any(len(w) for w in cuts) and cuts[0].shared is not None \
            and np.may_share_memory(cuts[0].shared, rec.signals):
        rec.signals = None          # the windows are views of it: not to be given back for reuse
    for w, start, rows, code in zip(cuts, starts.tolist(), (stops - starts).tolist(),
                                    codes.tolist()):
        stats.longest_run_steps = max(stats.longest_run_steps, w.steps)
        if w.steps < prep.window:
            stats.short_runs += 1
            stats.short_run_rows += rows
            continue
        out.dropped_nan += w.dropped_nan
        if len(w):
            out.x.append(w)
            out.label.append(names[code])
            if reach:
                first = (w.first_row - start) // prep.downsample
                stats.windows_at_run_edges += int(np.count_nonzero(
                    (first < reach) | (first + prep.window + reach > w.steps)))


def _classes_from_data(per_subject: Dict[Any, _Pieces]) -> List[ClassSpec]:
    """The distinct labels with windows, sorted (numerically when every label is a number)."""
    names = {name for pieces in per_subject.values() for name in pieces.label}
    if not names:
        return []
    numeric = all(is_number(n) for n in names)
    ordered = sorted(names, key=(lambda n: float(n)) if numeric else None)
    return [ClassSpec(n, n) for n in ordered]


def _split_arrays(per_subject: Dict[Any, _Pieces], subjects: Dict[str, list], classes,
                  config, prep: Preprocessing, stats: _Stats) -> dict:
    """``{split: (x, y, subject)}``: each split's windows as a :class:`StreamedWindows` (fitted on
    and written chunk by chunk: the split's windows are never in memory whole), its labels and
    subjects; HarError with advice when the train split has no window."""
    label_of = {c.name: i for i, c in enumerate(classes)}
    arrays = {}
    channels = len(prep.channels)
    dtype = _subject_dtype(subjects)
    for split in SPLITS:
        if split != "train" and not getattr(config, f"{split}_subjects"):
            continue
        xs, counts, labels, whose = [], [], [], []     # per piece of windows
        for k, subject in enumerate(subjects[split]):
            pieces = per_subject[subject]
            for x, name in zip(pieces.x, pieces.label):
                if name not in label_of:
                    continue
                xs.append(x)
                counts.append(len(x))
                labels.append(label_of[name])
                whose.append(k)
        counts = np.asarray(counts, np.int64)
        values = np.asarray(subjects[split], dtype)
        arrays[split] = (StreamedWindows(xs, prep.window, channels),
                         np.repeat(np.asarray(labels, np.int64), counts),
                         np.repeat(values[np.asarray(whose, np.intp)], counts))
    if not len(arrays["train"][1]):
        rate = prep.step_rate_hz
        if stats.longest_run_steps < prep.window:
            raise HarError(
                f"--window {prep.window} is longer than every activity run (longest: "
                f"{stats.longest_run_steps} steps = {stats.longest_run_steps / rate:.1f} s at "
                f"{rate:.1f} Hz); lower --window or --downsample")
        raise HarError("the train split has no complete window (all hold missing values or "
                       "the train subjects lack the chosen activities); choose other "
                       "--val-subjects/--test-subjects or a shorter --window")
    return arrays


def _subject_dtype(subjects: Dict[str, list]):
    every = [s for members in subjects.values() for s in members]
    if all(isinstance(s, (int, np.integer)) for s in every):
        return np.int64
    return f"<U{max(len(str(s)) for s in every)}"


def _source_entry(rec: Recording) -> Dict[str, Any]:
    return {"file": rec.name, **rec.extra, "subject": _plain(rec.subject), "size": rec.size,
            "sha256": rec.sha256, "rows": rec.rows}


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _meta(adapter: Dataset, cfg, subjects, arrays, per_subject, stats: _Stats, sources,
          mean, std, classes: List[ClassSpec], channels, prep: Preprocessing) -> dict:
    names = [c.name for c in classes]
    splits = {}
    for split, (_, y, _) in arrays.items():
        counts = np.bincount(y, minlength=len(names))
        splits[split] = {
            "subjects": [_plain(s) for s in subjects[split]],
            "windows": int(y.shape[0]),
            "per_class": {names[k]: int(counts[k]) for k in range(len(names))},
        }
    filtered = prep.reach_rows > 0
    return {
        "format": store.FORMAT_NAME,
        "format_version": store.FORMAT_VERSION,
        "dataset": adapter.name,
        "harkit_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": {**{k: v for k, v in cfg.to_dict().items() if k != "dataset"},
                    "stride": cfg.stride},
        "classes": [{"label": i, "id": c.id, "name": c.name} for i, c in enumerate(classes)],
        "channels": list(prep.channels),
        "channel_info": [{"name": c.name, "sensor": c.sensor, "modality": c.modality,
                          "unit": c.unit} for c in channels],
        "subjects_are": "subjects",
        "source_rate_hz": prep.rate_hz,
        "sample_rate_hz": prep.step_rate_hz,
        "window": prep.window,
        "stride": prep.stride,
        "window_s": prep.window / prep.step_rate_hz,
        "splits": splits,
        "dropped": {
            "windows_with_missing_values": {
                s: sum(per_subject[x].dropped_nan for x in subjects[s]) for s in arrays},
            "runs_shorter_than_window": stats.short_runs,
            "rows_in_short_runs": stats.short_run_rows,
            "rows_excluded": stats.rows_excluded,
            "rows_other_labels": stats.rows_other_labels,
            "rows_without_label": stats.rows_without_label,
            "other_labels": dict(stats.other_labels.most_common(20)),
            "records_skipped": dict(sorted(stats.records_skipped.items())),
        },
        "antialias": {
            "applied": filtered,
            "filter": (f"FIR low-pass, Hamming window, "
                       f"{2 * resample.REACH_STEPS * cfg.downsample + 1} taps, cutoff "
                       f"{prep.step_rate_hz / 2:g} Hz, zero phase")
            if filtered else None,
            "reach_steps": resample.REACH_STEPS if filtered else 0,
            "windows_at_run_edges": stats.windows_at_run_edges,
        },
        "normalization": {
            "applied": bool(cfg.normalize),
            "fitted_on": "train" if cfg.normalize else None,
            "mean": None if mean is None else [float(v) for v in mean],
            "std": None if std is None else [float(v) for v in std],
        },
        "sources": sources,
    }


# --------------------------------------------------------------------------- pre-cut windows
def _prepare_windows(adapter: Dataset, path: Path, config, force: bool, progress: bool,
                     t0: float) -> dict:
    """An archive of pre-cut windows: the adapter's splits, normalized on train, written."""
    result = adapter.windows(path, config, progress)
    t_read = time.perf_counter() - t0
    if not len(result.splits["train"].y):
        raise HarError(f"{path}: the train split holds no window; check the data")
    mean = std = None
    normalize = None
    if config.normalize:
        mean, std = fit_normalization(result.splits["train"].x)
        normalize = lambda x: apply_normalization(x, mean, std)  # noqa: E731
    names = [c.name for c in result.classes]
    first = result.splits["train"].x
    window, channels = int(first.shape[1]), [c.name for c in result.channels]
    rate = result.rate_hz
    splits = {}
    for split, ws in result.splits.items():
        counts = Counter(ws.y.tolist())
        splits[split] = {"subjects": sorted({_plain(s) for s in ws.subject.tolist()}),
                         "windows": int(len(ws.y)),
                         "per_class": {n: int(counts.get(k, 0)) for k, n in enumerate(names)}}
    meta = {
        "format": store.FORMAT_NAME, "format_version": store.FORMAT_VERSION,
        "dataset": adapter.name, "harkit_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": {k: v for k, v in config.to_dict().items() if k != "dataset"},
        "classes": [{"label": i, "id": c.id, "name": c.name}
                    for i, c in enumerate(result.classes)],
        "channels": channels,
        "channel_info": [{"name": c.name, "sensor": c.sensor, "modality": c.modality,
                          "unit": c.unit} for c in result.channels],
        "subjects_are": result.subjects_are,
        "source_rate_hz": rate, "sample_rate_hz": rate, "window": window, "stride": None,
        "window_s": window / rate if rate else None,
        "splits": splits, "dropped": result.dropped, **result.extra_meta,
        "normalization": {
            "applied": bool(config.normalize),
            "fitted_on": "train" if config.normalize else None,
            "mean": None if mean is None else [float(v) for v in mean],
            "std": None if std is None else [float(v) for v in std],
        },
        "sources": result.sources,
    }
    with atomic_dir(Path(config.out), force) as tmp:
        for split, ws in result.splits.items():
            store.write_split(tmp, split, ws.x, ws.y, ws.subject, before_write=normalize)
        write_json(tmp / "meta.json", meta)
    total = time.perf_counter() - t0
    return {**meta, "timing": {"read_s": round(t_read, 3), "windows_s": round(t_read, 3),
                               "total_s": round(total, 3)}}
