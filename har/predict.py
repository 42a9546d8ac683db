"""``har predict``: a checkpoint on raw recordings of its dataset, whole or streamed.

A recording goes through exactly the preprocessing stored in the checkpoint: the dataset's
adapter (named in ``preprocessing.dataset``, with the options the training data was prepared
with) parses it, :func:`data_prep.read.read_source` resamples (``--rate``) and fills gaps as
``prepare`` did, and :mod:`data_prep.transform` selects the checkpoint's channels, downsamples
and cuts windows, which are normalized with the train-split statistics. Windows slide every
``hop`` steps (default: the training stride) over each gap-free stretch, whatever the labels;
with ``by_label`` they restart at every change of label, exactly as ``prepare`` cut the training
windows.

Scoring (when the recording has labels other than the dataset's excluded ones, e.g. PAMAP2's
transient): a window is scored when all its rows, from its first to its last step, carry one
label and that label is one of the checkpoint's classes; excluded labels, labels the model was
not trained on and windows that straddle a change of label are left out. Each prediction stands
for ``hop`` steps of time in the time per activity.

Streaming (:mod:`har.stream`) releases the same windows as the whole-recording path, each once
its values are final (see :mod:`data_prep.transform`), and predicts them one at a time.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from data_prep.cache import ParseCache, default_cache_dir
from data_prep.datasets import get_dataset
from data_prep.datasets.base import Dataset, Recording
from data_prep.read import read_source
from data_prep.splits import apply_normalization
from data_prep.transform import Preprocessing, cut, span_labels, stretches
from har.checkpoint import load_checkpoint, model_from_checkpoint
from har.metrics import classification_scores
from har.scoring import check_windows, logits
from harkit.errors import HarError
from harkit.files import output_file, write_atomic

#: Checkpoint ``preprocessing`` keys of harkit 0.1 (PAMAP2's options, stored flat).
_FLAT_OPTIONS = ("sensors", "modalities", "heart_rate", "temperature", "include_optional",
                 "downsample", "antialias", "overlap", "normalize")


def predict_proba(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Class probabilities float32 ``[N, K]`` (softmax of the fp32 logits) of normalized windows
    ``x [N, T, C]``, on the model's device (:func:`har.scoring.logits`); HarError when the
    windows are not ``[N, T, C]`` with the model's T and C."""
    return torch.softmax(logits(model, x), dim=1).cpu().numpy()


@contextlib.contextmanager
def torch_threads(threads: Optional[int]):
    """Run the block with ``threads`` torch CPU threads (None: unchanged), then restore them.
    One thread answers a single window fastest, and by far when other processes share the
    cores (a 2-thread pass can stall ~100×)."""
    before = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or int(threads) < 1:
            raise HarError(f"--threads {threads} is invalid; pass an integer >= 1")
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Predictor:
    """A checkpoint ready to predict: model, dataset adapter and options, preprocessing,
    normalization, classes, hop."""

    path: Path
    model: torch.nn.Module
    adapter: Dataset
    options: Any                 # the adapter's prepare options the model was trained with
    prep: Preprocessing
    mean: Optional[np.ndarray]   # float64 [C], None when the data was not normalized
    std: Optional[np.ndarray]
    classes: List[str]           # class names, index = model output
    hop: int                     # steps between window starts
    by_label: bool = False

    @classmethod
    def load(cls, checkpoint, hop: Optional[int] = None, by_label: bool = False) -> "Predictor":
        """Load ``checkpoint``; HarError when it lacks what predict needs or ``hop`` < 1."""
        path = Path(checkpoint)
        ckpt = load_checkpoint(path)
        adapter, options, prep = preprocessing_of(ckpt, path)
        if hop is not None and (isinstance(hop, bool) or int(hop) < 1):
            raise HarError(f"--hop {hop} is invalid; pass a number of steps >= 1 (the training "
                           f"stride is {prep.stride})")
        norm = ckpt.get("normalization") or {}
        mean = std = None
        if norm.get("applied"):
            mean, std = np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)
        return cls(path, model_from_checkpoint(ckpt), adapter, options, prep, mean, std,
                   list(ckpt["classes"]), prep.stride if hop is None else int(hop), by_label)

    @property
    def hop_s(self) -> float:
        """Seconds between consecutive predictions."""
        return self.hop / self.prep.step_rate_hz

    @property
    def resample_hz(self) -> float:
        """The ``--rate`` the training data was resampled to (0: none)."""
        return float(getattr(self.options, "rate", 0) or 0)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """float32 ``[N, K]`` for raw windows ``x [N, T, C]`` (normalized here, on a copy);
        HarError when they are not ``[N, T, C]`` with the checkpoint's T and C."""
        check_windows(self.model, x)
        x = np.array(x, dtype=np.float32)
        if self.mean is not None:
            apply_normalization(x, self.mean, self.std)
        return predict_proba(self.model, x)


def preprocessing_of(ckpt: dict, path) -> Tuple[Dataset, Any, Preprocessing]:
    """The checkpoint's adapter, its prepare options and :class:`Preprocessing`; HarError
    naming ``path`` when they are incomplete or the dataset ships only windows."""
    from data_prep.config import load_prepare_config

    pre = ckpt.get("preprocessing") or {}
    missing = [k for k in ("window", "stride") if pre.get(k) is None]
    if missing and pre.get("dataset"):
        adapter = get_dataset(pre["dataset"])
        if adapter.kind == "windows":
            raise HarError(f"{path} was trained on {adapter.name} data, which ships only "
                           "pre-cut windows, no raw recordings; score it with 'har evaluate'")
    if missing:
        raise HarError(f"{path} lacks the preprocessing record predict needs "
                       f"({', '.join(missing)}); train it again with this harkit")
    name = pre.get("dataset") or "pamap2"
    adapter = get_dataset(name)
    if adapter.kind == "windows":
        raise HarError(f"{path} was trained on {name} data, which ships only pre-cut windows, no "
                       "raw recordings; score it with 'har evaluate'")
    stored = pre.get("options") or {k: pre[k] for k in _FLAT_OPTIONS if k in pre}
    known = set(adapter.options.names()) - {"dataset"}
    options = load_prepare_config(None, {k: v for k, v in stored.items() if k in known}, name)
    if "channels" in known and not options.channels:    # read just the model's columns
        options = dataclasses.replace(options, channels=list(ckpt["channels"]))
    prep = Preprocessing(tuple(ckpt["channels"]),
                         float(pre.get("source_rate_hz") or adapter.rate_hz or 0),
                         int(options.downsample), bool(options.antialias), int(pre["window"]),
                         int(pre["stride"]))
    known_channels = [c.name for c in adapter.all_channels()]
    unknown = [c for c in prep.channels if known_channels and c not in known_channels]
    if unknown:
        raise HarError(f"{path}: channel(s) {', '.join(unknown[:4])} are not {name} channels "
                       f"(those are {', '.join(known_channels[:6])}, ...); the checkpoint is "
                       "damaged or its preprocessing names the wrong dataset")
    if list(ckpt["input_shape"]) != [1, prep.window, len(prep.channels)]:
        raise HarError(f"{path}: input shape {ckpt['input_shape']} does not match its "
                       f"{prep.window}-step windows of {len(prep.channels)} channels; "
                       "it is damaged, train again")
    return adapter, options, prep


# --------------------------------------------------------------------------- timelines
@dataclass
class Timeline:
    """The predictions of one recording, one row per window."""

    name: str
    start_s: np.ndarray       # float64 [N]: timestamp of the window's first step
    end_s: np.ndarray         # float64 [N]: timestamp of its last step + one step
    predicted: np.ndarray     # int64 [N]: class index
    probability: np.ndarray   # float32 [N]: its softmax probability
    true: np.ndarray          # int64 [N]: label code when all the window's rows agree, else <0
    label_names: Sequence[str]   # the names of the label codes
    labelled: bool            # some row has a label the dataset does not exclude
    dropped_nan: int = 0      # windows skipped for missing values
    note: str = ""            # why there is no window, when there is none

    def __len__(self) -> int:
        return int(self.predicted.shape[0])

    def true_names(self) -> List[str]:
        """The true label of each window: its name, or ``""`` when the window straddles a change
        of label or has none (as written in the timeline CSV)."""
        return [true_name(code, self.label_names) for code in self.true]


def true_name(code: int, label_names: Sequence[str]) -> str:
    """A window's true label as written in the timeline CSV and printed by streaming: its name,
    or ``""`` (no label, or a window across a change of label)."""
    return str(label_names[int(code)]) if code >= 0 else ""


def is_labelled(labels: np.ndarray, label_names: Sequence[str], excluded: Sequence[str]) -> bool:
    """Whether some row carries a label that is not one of the dataset's excluded ones."""
    codes = np.unique(labels[labels >= 0])
    return any(label_names[c] not in excluded for c in codes)


def predict_recording(predictor: Predictor, rec: Recording) -> Timeline:
    """Predict every window of a conditioned recording (see the module docstring)."""
    prep = predictor.prep
    columns = prep.columns(rec.channels, rec.name)
    xs, firsts, dropped, longest = [], [], 0, 0
    for a, b in stretches(rec.timestamp_s, rec.labels, predictor.by_label, prep.rate_hz):
        w = cut(rec.signals, a, b, prep, columns, stride=predictor.hop)
        longest = max(longest, b - a)
        xs.append(w.x)
        firsts.append(w.first_row)
        dropped += w.dropped_nan
    first = np.concatenate(firsts) if firsts else np.empty(0, np.int64)
    x = np.concatenate(xs) if xs else np.empty((0, prep.window, len(prep.channels)), np.float32)
    last = first + (prep.window - 1) * prep.downsample
    probs = predictor.probabilities(x)
    note = ""
    if not first.size:
        seen = ~np.isnan(np.asarray(rec.signals)[:, columns]).all(axis=0)
        blank = [c for c, ok in zip(prep.channels, seen) if not ok]
        note = no_window_note(rec.name, prep, longest, dropped, predictor.by_label, blank,
                              rec.channels)
    step_s = prep.downsample / prep.rate_hz
    return Timeline(rec.name, rec.timestamp_s[first], rec.timestamp_s[last] + step_s,
                    probs.argmax(1), probs.max(1), span_labels(rec.labels, first, last),
                    tuple(rec.label_names),
                    is_labelled(rec.labels, rec.label_names, predictor.adapter.excluded),
                    dropped, note)


def no_window_note(name: str, prep: Preprocessing, longest_rows: int, dropped: int,
                   by_label: bool, blank: Sequence[str] = (),
                   columns: Sequence[str] = ()) -> str:
    """Why the recording ``name`` gives no window: columns the model needs that hold no value
    (``blank``), windows all dropped for missing values, or too short."""
    if blank:
        where = ", ".join(_column_label(c, columns) for c in blank[:4])
        more = f" and {len(blank) - 4} more" if len(blank) > 4 else ""
        return (f"{name}: column(s) {where}{more} hold no value (all NaN), but the model "
                "needs them; pass a recording with the sensors it was trained on")
    need = (prep.window - 1) * prep.downsample + 1
    if dropped:
        return (f"{name}: all {dropped} windows hold missing values (NaN at the edges of "
                "gap-free stretches); pass a recording with fewer dropouts")
    what = "run of one activity label" if by_label else "gap-free stretch"
    return (f"{name} is shorter than one window: its longest {what} is "
            f"{longest_rows / prep.rate_hz:.2f} s, the model needs {need / prep.rate_hz:.2f} s "
            f"({prep.window} steps at {prep.step_rate_hz:.1f} Hz); pass a longer recording")


def _column_label(channel: str, columns: Sequence[str]) -> str:
    """PAMAP2 names the file's 1-based column number too: ``22 (chest_acc16_x)``."""
    from data_prep.datasets import pamap2

    if channel in pamap2.COLUMN_INDEX and tuple(columns) == pamap2.SIGNAL_COLUMNS:
        return f"{pamap2.COLUMN_INDEX[channel] + 1} ({channel})"
    return repr(channel)


def predict_path(predictor: Predictor, path, use_cache: bool = True) -> List[Timeline]:
    """Timelines of the recording(s) at ``path`` (a file or a folder of the dataset's files).

    HarError when a file is malformed (naming the line) or no recording yields a window."""
    path = Path(path)
    adapter = predictor.adapter
    if not path.exists():
        raise HarError(f"recording {path} does not exist; pass a {adapter.name} recording file "
                       "or a folder of them")
    sources = adapter.recording_sources(path)
    if not sources:
        raise HarError(f"no {adapter.name} recordings under {path}/; pass a file or a folder of "
                       f"them ({adapter.layout})")
    cache = ParseCache(default_cache_dir() if use_cache and adapter.cacheable else None,
                       adapter.name, adapter.cache_key(predictor.options)
                       + (f"rate{predictor.resample_hz:g}" if predictor.resample_hz else ""))
    timelines = []
    for source in sources:
        for rec in read_source(adapter, source, predictor.options, cache,
                               rate_hz=predictor.resample_hz, for_prepare=False):
            timelines.append(predict_recording(predictor, rec))
            rec.release()
    cache.flush()
    if not any(len(t) for t in timelines):
        raise HarError(timelines[0].note if len(timelines) == 1 else
                       f"no recording under {path} yields a complete window "
                       f"({timelines[0].note})")
    return timelines


# --------------------------------------------------------------------------- summary, CSV
def summarize(timelines: Sequence[Timeline], predictor: Predictor) -> Dict:
    """Windows, seconds per predicted activity, and (when labelled) accuracy and macro F1 over
    the scored windows, overall and per recording."""
    per = [_scores(t, predictor) if t.labelled else None for t in timelines]
    pred = np.concatenate([t.predicted for t in timelines])
    labelled = any(t.labelled for t in timelines)
    counts = np.bincount(pred, minlength=len(predictor.classes))
    scored = [_scored(t, predictor) for t in timelines]
    y = np.concatenate([s[1] for s in scored])
    p = np.concatenate([t.predicted[s[0]] for t, s in zip(timelines, scored)])
    return {
        "windows": int(pred.size), "hop_s": predictor.hop_s,
        "seconds_per_activity": {name: float(n * predictor.hop_s)
                                 for name, n in zip(predictor.classes, counts) if n},
        "labelled": labelled,
        "scores": _score_dict(y, p) if labelled else None,
        "recordings": [{"name": t.name, "windows": len(t), "dropped_nan": t.dropped_nan,
                        "note": t.note, "scores": s} for t, s in zip(timelines, per)],
    }


def _scored(t: Timeline, predictor: Predictor) -> Tuple[np.ndarray, np.ndarray]:
    """``(mask [N], class index of the scored windows)``: windows whose rows all carry one of
    the checkpoint's classes."""
    label_of = {name: k for k, name in enumerate(predictor.classes)}
    classes = np.array([label_of.get(str(n), -1) for n in t.label_names] + [-1], np.int64)
    y = classes[np.where(t.true >= 0, t.true, len(t.label_names))]
    mask = y >= 0
    return mask, y[mask]


def _scores(t: Timeline, predictor: Predictor) -> Dict:
    mask, y = _scored(t, predictor)
    return _score_dict(y, t.predicted[mask])


def _score_dict(y: np.ndarray, pred: np.ndarray) -> Dict:
    result = {"scored_windows": int(y.size)}
    if y.size:
        s = classification_scores(y, pred)
        result.update(accuracy=s["accuracy"], f1_macro=s["f1_macro"])
    return result


def format_summary(summary: Dict) -> str:
    """The summary as text: per recording, time per predicted activity, overall scores."""
    lines = []
    several = len(summary["recordings"]) > 1
    for r in summary["recordings"]:
        if r["note"] and not r["windows"]:
            lines.append(f"skipped {r['note']}")
        elif several or r["scores"]:
            s = r["scores"]
            line = f"{Path(r['name']).name}: {r['windows']} windows"
            if s and "accuracy" in s:
                line += (f"; accuracy {s['accuracy']:.4f}, macro F1 {s['f1_macro']:.4f} on "
                         f"{s['scored_windows']} scored")
            lines.append(line)
    total = sum(summary["seconds_per_activity"].values())
    lines += ["", f"{'predicted activity':<20} {'time (s)':>9} {'share':>7}"]
    for name, seconds in sorted(summary["seconds_per_activity"].items(), key=lambda kv: -kv[1]):
        lines.append(f"{name:<20} {seconds:>9.1f} {100 * seconds / total:>6.1f}%")
    lines.append(f"{summary['windows']} windows, one prediction every {summary['hop_s']:.2f} s")
    s = summary["scores"]
    if s and "accuracy" in s:
        lines.append(f"accuracy {s['accuracy']:.4f}, macro F1 {s['f1_macro']:.4f} on "
                     f"{s['scored_windows']} windows whose rows all carry one of the model's "
                     "activities (other labels and windows across a change are not scored)")
    elif summary["labelled"]:
        lines.append("no window lies within one of the model's activities: nothing to score")
    return "\n".join(lines)


def write_timeline_csv(path, timelines: Sequence[Timeline], predictor: Predictor) -> Path:
    """``start_s,end_s,activity,probability`` (+ ``true_activity`` when labelled; a leading
    ``recording`` column when there are several recordings), written atomically."""
    labelled = any(t.labelled for t in timelines)
    several = len(timelines) > 1
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow((["recording"] if several else []) + ["start_s", "end_s", "activity",
                 "probability"] + (["true_activity"] if labelled else []))
    for t in timelines:
        truth = t.true_names()
        for i in range(len(t)):
            out.writerow(([t.name] if several else []) + [
                f"{t.start_s[i]:.3f}", f"{t.end_s[i]:.3f}",
                predictor.classes[t.predicted[i]], f"{t.probability[i]:.4f}"]
                + ([truth[i]] if labelled else []))
    return write_atomic(output_file(path, "--out"), buf.getvalue())

