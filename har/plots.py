"""PNG figures: training curves, confusion matrices, prediction timelines.

matplotlib is imported only when a figure is drawn, and only its object-oriented API with the
Agg canvas is used (no pyplot, no display, no global backend switch), so plotting works on a
headless machine and leaves an interactive session's backend alone. Sizes are fixed in pixels
(``DPI`` × the figure size in inches), so the files have predictable dimensions.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from harkit.errors import HarError
from harkit.files import output_file, write_with

DPI = 100
CURVES_SIZE = (10.0, 4.0)       # inches: 1000 × 400 px
CONFUSION_SIZE = (8.0, 7.0)     # 800 × 700 px
TIMELINE_WIDTH = 12.0           # inches: 1200 px wide
TIMELINE_ROW_HEIGHT = 1.6       # inches per recording
TIMELINE_EXTRA_HEIGHT = 1.4     # inches for the axis label and the legend


def _figure(size):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise HarError("drawing PNGs needs matplotlib, which is not installed; "
                       "pip install matplotlib") from None

    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (its folder is created)."""
    path = output_file(path, "PNG")
    return write_with(path, lambda fh: fig.savefig(fh, dpi=DPI, format="png"))


# --------------------------------------------------------------------------- curves
def plot_curves(run_dir, out: Optional[Path] = None) -> Path:
    """Draw ``run_dir/metrics.csv`` (``har train``'s columns) as ``curves.png`` (1000 × 400 px;
    ``out`` overrides the file): train and val loss per epoch on the left, val macro F1 and
    accuracy on the right. Returns the path written; HarError when metrics.csv is missing or
    has no epoch."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        raise HarError(f"{run_dir} has no metrics.csv; pass a run folder written by 'har train'")
    with open(metrics, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "epoch" not in rows[0] or "train_loss" not in rows[0]:
        raise HarError(f"{metrics} holds no epoch yet; train at least one epoch first")

    def column(name):
        return np.array([float(r[name]) if r.get(name) not in (None, "") else math.nan
                         for r in rows])

    epoch = column("epoch")
    fig = _figure(CURVES_SIZE)
    loss, score = fig.subplots(1, 2)
    loss.plot(epoch, column("train_loss"), marker="o", ms=3, label="train loss")
    val_loss = column("val_loss")
    if not np.isnan(val_loss).all():
        loss.plot(epoch, val_loss, marker="o", ms=3, label="val loss")
    loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    loss.legend()
    f1, acc = column("val_f1_macro"), column("val_accuracy")
    if np.isnan(f1).all():
        score.text(0.5, 0.5, "no val split", ha="center", va="center",
                   transform=score.transAxes)
    else:
        score.plot(epoch, f1, marker="o", ms=3, color="C2", label="val macro F1")
        score.plot(epoch, acc, marker="o", ms=3, color="C3", alpha=0.6, label="val accuracy")
        best = int(np.nanargmax(f1))
        score.axvline(epoch[best], color="grey", lw=0.8, ls="--",
                      label=f"best: epoch {epoch[best]:.0f}")
        score.legend(loc="lower right")
    score.set(xlabel="epoch", ylim=(0, 1), title="validation")
    for ax in (loss, score):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    return _save(fig, out if out is not None else run_dir / "curves.png")


# --------------------------------------------------------------------------- confusion
def plot_confusion(counts, class_names: Sequence[str], path, title: str = "") -> Path:
    """The confusion matrix ``counts [K, K]`` (rows: true, columns: predicted) as an 800 × 700 px
    PNG: colour = share of the true class (row-normalized), text = count."""
    from har.metrics import row_normalized

    counts = np.asarray(counts)
    share = row_normalized(counts)
    k = len(class_names)
    fig = _figure(CONFUSION_SIZE)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    font = 8 if k <= 12 else 6
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=font,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=font + 1)
    ax.set_yticks(range(k), class_names, fontsize=font + 1)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------- timeline
def timeline_size(recordings: int):
    """Figure size in inches of a timeline of ``recordings`` recordings (× ``DPI`` = pixels)."""
    return (TIMELINE_WIDTH, TIMELINE_EXTRA_HEIGHT + TIMELINE_ROW_HEIGHT * recordings)


def plot_timeline(timelines, class_names: Sequence[str], hop_s: float, path) -> Path:
    """True vs predicted activity over time, one panel per :class:`har.predict.Timeline`.

    Each prediction is drawn over ``hop_s`` seconds centred on its window's middle, the true
    activity likewise (grey: a label that is not a class, e.g. PAMAP2's transient; blank: the
    window straddles a change of label or the
    recording has no labels). Size: :func:`timeline_size`."""
    names = list(class_names)
    colors = _class_colors(len(names))
    fig = _figure(timeline_size(len(timelines)))
    axes = fig.subplots(len(timelines), 1, squeeze=False)[:, 0]
    for ax, t in zip(axes, timelines):
        mid = (t.start_s + t.end_s) / 2
        spans = [(m - hop_s / 2, hop_s) for m in mid]
        tracks = [("predicted", [colors[k] for k in t.predicted])]
        if t.labelled:
            truth = []
            for name in t.true_names():
                if name in names:
                    truth.append(colors[names.index(name)])
                else:
                    truth.append("0.85" if name else "none")
            tracks.append(("true", truth))
        for y, (_, face) in enumerate(tracks):
            ax.broken_barh(spans, (y - 0.4, 0.8), facecolors=face, linewidth=0)
        ax.set_yticks(range(len(tracks)), [label for label, _ in tracks])
        ax.set_ylim(-0.6, len(tracks) - 0.4)
        ax.set_title(Path(t.name).name, fontsize=9, loc="left")
        if len(t):
            ax.set_xlim(t.start_s[0], t.end_s[-1])
    axes[-1].set_xlabel("time (s)")
    from matplotlib.patches import Patch

    handles = [Patch(color=colors[i], label=n) for i, n in enumerate(names)]
    handles.append(Patch(color="0.85", label="other label"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=8,
               frameon=False)
    legend_in = 0.18 * math.ceil(len(handles) / 7) + 0.08
    fig.tight_layout(rect=(0, legend_in / timeline_size(len(timelines))[1], 1, 1))
    return _save(fig, path)


def _class_colors(k: int) -> List:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if k > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(k)]



# --------------------------------------------------------------------------- folds
FOLDS_HEIGHT = 4.0              # inches: 1000 × 400 px, like curves.png


def plot_folds(names: Sequence[str], f1: Sequence[float], path, title: str = "") -> Path:
    """``har cv``'s ``folds.png``: macro F1 per fold as bars, the mean as a dashed line
    (1000 × 400 px)."""
    values = np.asarray(f1, dtype=float)
    fig = _figure((CURVES_SIZE[0], FOLDS_HEIGHT))
    ax = fig.subplots()
    ax.bar(range(len(values)), values, color="C0", alpha=0.8)
    mean = float(values.mean()) if values.size else 0.0
    ax.axhline(mean, color="C3", ls="--", lw=1.2,
               label=f"mean {mean:.3f} ± {float(values.std()) if values.size else 0:.3f}")
    ax.set_xticks(range(len(values)), list(names), rotation=45 if len(values) > 8 else 0,
                  ha="right" if len(values) > 8 else "center", fontsize=8)
    ax.set(ylabel="test macro F1", ylim=(0, 1), title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
