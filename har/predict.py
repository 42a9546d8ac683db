"""``har predict``: a checkpoint on raw PAMAP2 recordings, whole (a file or folder) or streamed.

A recording goes through exactly the preprocessing stored in the checkpoint: the parser and gap
filling of ``prepare`` (:func:`data_prep.read.parse_bytes`), the checkpoint's channels,
downsampling and windows (:mod:`data_prep.transform`), its train-split normalization. Windows
slide every ``hop`` steps (default: the training stride) over each gap-free stretch, whatever
the labels; with ``by_label`` they restart at every change of the activity column, exactly as
``prepare`` cut the training windows.

Scoring (when the recording has labels, i.e. some activity ID is not 0): a window is scored when
all its rows, from its first to its last step, carry one activity ID and that ID is one of the
checkpoint's classes; transient (0), activities the model was not trained on and windows that
straddle a change of label are left out. Each prediction stands for ``hop`` steps of time in
the time per activity.

Streaming (:mod:`har.stream`) releases the same windows as the whole-recording path, each once
its values are final (see :mod:`data_prep.transform`), and predicts them one at a time.
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from data_prep import pamap2
from data_prep.read import (
    ParseCache,
    Recording,
    Source,
    default_cache_dir,
    file_source,
    read_recording,
    visible_files,
)
from data_prep.splits import apply_normalization
from data_prep.transform import Preprocessing, cut, span_labels, stretches
from har.checkpoint import load_checkpoint, model_from_checkpoint
from har.metrics import classification_scores
from har.scoring import check_windows, logits
from harkit.errors import HarError
from harkit.files import output_file, write_atomic


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
    """A checkpoint ready to predict: model, preprocessing, normalization, classes, hop."""

    path: Path
    model: torch.nn.Module
    prep: Preprocessing
    mean: Optional[np.ndarray]   # float64 [C], None when the data was not normalized
    std: Optional[np.ndarray]
    classes: List[str]           # class names, index = model output
    class_ids: List[int]         # their PAMAP2 activity IDs
    hop: int                     # steps between window starts
    by_label: bool = False

    @classmethod
    def load(cls, checkpoint, hop: Optional[int] = None, by_label: bool = False) -> "Predictor":
        """Load ``checkpoint``; HarError when it lacks what predict needs or ``hop`` < 1."""
        path = Path(checkpoint)
        ckpt = load_checkpoint(path)
        prep = preprocessing_of(ckpt, path)
        if hop is not None and (isinstance(hop, bool) or int(hop) < 1):
            raise HarError(f"--hop {hop} is invalid; pass a number of steps >= 1 (the training "
                           f"stride is {prep.stride})")
        norm = ckpt.get("normalization") or {}
        mean = std = None
        if norm.get("applied"):
            mean, std = np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)
        class_ids = ckpt.get("class_ids") or []
        if len(class_ids) != len(ckpt["classes"]):
            raise HarError(f"{path} lacks the activity IDs of its classes; train it again with "
                           "this harkit")
        return cls(path, model_from_checkpoint(ckpt), prep, mean, std, list(ckpt["classes"]),
                   [int(a) for a in class_ids], prep.stride if hop is None else int(hop),
                   by_label)

    @property
    def hop_s(self) -> float:
        """Seconds between consecutive predictions."""
        return self.hop / self.prep.rate_hz

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """float32 ``[N, K]`` for raw windows ``x [N, T, C]`` (normalized here, on a copy);
        HarError when they are not ``[N, T, C]`` with the checkpoint's T and C."""
        check_windows(self.model, x)
        x = np.array(x, dtype=np.float32)
        if self.mean is not None:
            apply_normalization(x, self.mean, self.std)
        return predict_proba(self.model, x)


def preprocessing_of(ckpt: dict, path) -> Preprocessing:
    """The checkpoint's :class:`Preprocessing`; HarError naming ``path`` when it is incomplete."""
    prep = ckpt.get("preprocessing") or {}
    missing = [k for k in ("downsample", "antialias", "window", "stride") if k not in prep]
    if missing:
        raise HarError(f"{path} lacks the preprocessing record predict needs "
                       f"({', '.join(missing)}); train it again with this harkit")
    if prep.get("dataset") not in (None, "pamap2"):
        raise HarError(f"{path} was trained on {prep['dataset']!r} data; 'har predict' reads "
                       "PAMAP2-format recordings")
    result = Preprocessing(tuple(ckpt["channels"]), int(prep["downsample"]),
                           bool(prep["antialias"]), int(prep["window"]), int(prep["stride"]))
    try:
        result.columns
    except HarError as exc:
        raise HarError(f"{path}: {exc}") from None
    if list(ckpt["input_shape"]) != [1, result.window, len(result.channels)]:
        raise HarError(f"{path}: input shape {ckpt['input_shape']} does not match its "
                       f"{result.window}-step windows of {len(result.channels)} channels; "
                       "it is damaged, train again")
    return result


# --------------------------------------------------------------------------- timelines
@dataclass
class Timeline:
    """The predictions of one recording, one row per window."""

    name: str
    start_s: np.ndarray       # float64 [N]: timestamp of the window's first step
    end_s: np.ndarray         # float64 [N]: timestamp of its last step + one step
    predicted: np.ndarray     # int64 [N]: class index
    probability: np.ndarray   # float32 [N]: its softmax probability
    true_id: np.ndarray       # int64 [N]: activity ID when all the window's rows agree, else -1
    labelled: bool            # some row has an activity ID other than 0
    dropped_nan: int = 0      # windows skipped for missing values
    note: str = ""            # why there is no window, when there is none

    def __len__(self) -> int:
        return int(self.predicted.shape[0])


def predict_recording(predictor: Predictor, rec: Recording) -> Timeline:
    """Predict every window of a parsed recording (see the module docstring)."""
    prep = predictor.prep
    xs, firsts, dropped, longest = [], [], 0, 0
    for a, b in stretches(rec.timestamp_s, rec.activity, predictor.by_label):
        w = cut(rec.signals, a, b, prep, stride=predictor.hop)
        longest = max(longest, b - a)
        xs.append(w.x)
        firsts.append(w.first_row)
        dropped += w.dropped_nan
    first = np.concatenate(firsts) if firsts else np.empty(0, np.int64)
    x = np.concatenate(xs) if xs else np.empty((0, prep.window, len(prep.channels)), np.float32)
    last = first + (prep.window - 1) * prep.downsample
    probs = predictor.probabilities(x)
    labelled = bool(np.any(rec.activity != pamap2.TRANSIENT_ID))
    note = ""
    if not first.size:
        blank = [c for c, seen in zip(prep.channels, ~np.isnan(rec.signals[:, prep.columns])
                                      .all(axis=0)) if not seen]
        note = no_window_note(rec.source.name, prep, longest, dropped, predictor.by_label, blank)
    step_s = prep.downsample / pamap2.SAMPLE_RATE_HZ
    return Timeline(rec.source.name, rec.timestamp_s[first], rec.timestamp_s[last] + step_s,
                    probs.argmax(1), probs.max(1), span_labels(rec.activity, first, last),
                    labelled, dropped, note)


def no_window_note(name: str, prep: Preprocessing, longest_rows: int, dropped: int,
                   by_label: bool, blank: Sequence[str] = ()) -> str:
    """Why the recording ``name`` gives no window: columns the model needs that hold no value
    (``blank``), windows all dropped for missing values, or too short."""
    if blank:
        columns = ", ".join(f"{pamap2.COLUMN_INDEX[c] + 1} ({c})" for c in blank[:4])
        more = f" and {len(blank) - 4} more" if len(blank) > 4 else ""
        return (f"{name}: column(s) {columns}{more} hold no value (all NaN), but the model "
                "needs them; pass a recording with the sensors it was trained on")
    need = (prep.window - 1) * prep.downsample + 1
    if dropped:
        return (f"{name}: all {dropped} windows hold missing values (NaN at the edges of "
                "gap-free stretches); pass a recording with fewer dropouts")
    what = "run of one activity label" if by_label else "gap-free stretch"
    return (f"{name} is shorter than one window: its longest {what} is "
            f"{longest_rows / pamap2.SAMPLE_RATE_HZ:.2f} s, the model needs "
            f"{need / pamap2.SAMPLE_RATE_HZ:.2f} s ({prep.window} steps at "
            f"{prep.rate_hz:.1f} Hz); pass a longer recording")


def recordings(path) -> List[Source]:
    """The ``.dat`` files to predict: ``path`` itself, or every ``*.dat`` under the folder."""
    path = Path(path)
    if not path.exists():
        raise HarError(f"recording {path} does not exist; pass a PAMAP2-format .dat file or a "
                       "folder of them")
    files = [path] if path.is_file() else visible_files(path, "*.dat")
    if not files:
        raise HarError(f"no .dat files under {path}/; pass a PAMAP2-format .dat file or a folder "
                       "of them")
    return [file_source(f, _subject_or_zero(f.name), f.parent.name) for f in files]


def _subject_or_zero(filename: str) -> int:
    try:
        return pamap2.subject_id(filename)
    except ValueError:
        return 0


def predict_path(predictor: Predictor, path, use_cache: bool = True) -> List[Timeline]:
    """Timelines of the recording(s) at ``path`` (a file or a folder of ``.dat`` files).

    HarError when a file is malformed (naming the line) or no recording yields a window."""
    cache = ParseCache(default_cache_dir() if use_cache else None)
    timelines = [predict_recording(predictor, read_recording(s, cache))
                 for s in recordings(path)]
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
    per = [_scores(t.predicted, t.true_id, predictor) if t.labelled else None for t in timelines]
    pred = np.concatenate([t.predicted for t in timelines])
    true = np.concatenate([t.true_id for t in timelines])
    labelled = any(t.labelled for t in timelines)
    counts = np.bincount(pred, minlength=len(predictor.classes))
    return {
        "windows": int(pred.size), "hop_s": predictor.hop_s,
        "seconds_per_activity": {name: float(n * predictor.hop_s)
                                 for name, n in zip(predictor.classes, counts) if n},
        "labelled": labelled,
        "scores": _scores(pred, true, predictor) if labelled else None,
        "recordings": [{"name": t.name, "windows": len(t), "dropped_nan": t.dropped_nan,
                        "note": t.note, "scores": s} for t, s in zip(timelines, per)],
    }


def _scores(pred: np.ndarray, true_id: np.ndarray, predictor: Predictor) -> Dict:
    label_of = {aid: k for k, aid in enumerate(predictor.class_ids)}
    scored = np.isin(true_id, predictor.class_ids)
    y = np.array([label_of[int(a)] for a in true_id[scored]], dtype=np.int64)
    result = {"scored_windows": int(scored.sum())}
    if y.size:
        s = classification_scores(y, pred[scored])
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
                     "activities (transient and windows across a change are not scored)")
    elif summary["labelled"]:
        lines.append("no window lies within one of the model's activities: nothing to score")
    return "\n".join(lines)


def true_name(true_id: int) -> str:
    """The true activity of a window as written in the timeline CSV and printed by streaming:
    its name (``"transient"`` for 0), or ``""`` for -1 (the window straddles a change)."""
    return pamap2.ACTIVITIES[int(true_id)] if true_id >= 0 else ""


def true_names(true_id: np.ndarray) -> List[str]:
    """:func:`true_name` of each window."""
    return [true_name(a) for a in true_id]


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
        truth = true_names(t.true_id)
        for i in range(len(t)):
            out.writerow(([t.name] if several else []) + [
                f"{t.start_s[i]:.3f}", f"{t.end_s[i]:.3f}",
                predictor.classes[t.predicted[i]], f"{t.probability[i]:.4f}"]
                + ([truth[i]] if labelled else []))
    return write_atomic(output_file(path, "--out"), buf.getvalue())
