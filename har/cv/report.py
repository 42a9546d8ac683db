"""The cross-validation report: ``cv.csv``, ``summary.json``, ``confusion_pooled.png``,
``folds.png`` in the ``har cv`` output folder, from the folds that finished.

Scores per fold are those of each fold's ``best.pt`` on its test subjects (fp32, as ``har
evaluate``). The summary gives their mean and standard deviation over folds (population std,
``ddof=0``, as ``numpy.std`` and scikit-learn's ``cross_val_score(...).std()``), and the
**pooled** scores of all folds' test predictions concatenated (scikit-learn's metrics on the
union), which some papers report instead. Formats: docs/FORMAT.md ("Cross-validation").
"""

from __future__ import annotations

import csv
import io
import json
import platform
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from har.metrics import SCORE_NAMES, classification_scores, confusion_matrix
from harkit import __version__
from harkit.errors import HarError
from harkit.files import write_atomic, write_json

CSV_COLUMNS = ("fold", "test_subjects", "train_windows", "test_windows", "accuracy",
               "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "epochs", "seconds")
FORMAT_NAME, FORMAT_VERSION = "harkit.cv", 1


def report(out) -> Dict[str, Any]:
    """Build the report of the finished folds in ``out``; HarError when none has finished."""
    from har.cv.runner import is_finished, load_plan
    from har.plots import plot_confusion, plot_folds

    out = Path(out)
    plan = load_plan(out)
    names = [f["name"] for f in plan["plan"]]
    done = [n for n in names if is_finished(out / n)]
    if not done:
        raise HarError(f"{out} has no finished fold yet (of {len(names)} planned); run "
                       "'har cv' with that --out (all folds, or --fold K) first")
    rows = [json.loads((out / n / "fold.json").read_text()) for n in done]
    preds = [np.load(out / n / "test_predictions.npz") for n in done]
    y_true = np.concatenate([p["y_true"] for p in preds])
    y_pred = np.concatenate([p["y_pred"] for p in preds])
    classes = _classes(plan, out)
    pooled = classification_scores(y_true, y_pred)
    scores = {name: [r[name] for r in rows] for name in SCORE_NAMES}
    summary = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "harkit_version": __version__,
        "out": str(out), "data": plan["data"], "dataset": plan.get("dataset"),
        "protocol": {"folds": plan["folds"], "selection": plan["select"], "seed": plan["seed"],
                     "normalization": plan["normalization"],
                     "groups": plan.get("subjects_are", "subjects"),
                     "model": plan["model"], "hparams": plan["hparams"],
                     "options": plan["options"]},
        "folds_planned": len(names), "folds_finished": len(done),
        "missing_folds": [n for n in names if n not in done],
        "folds": rows,
        "mean": {k: float(np.mean(v)) for k, v in scores.items()},
        "std": {k: float(np.std(v)) for k, v in scores.items()},
        "pooled": {**pooled, "windows": int(y_true.size)},
        "versions": _versions(),
    }
    write_atomic(out / "cv.csv", _csv(rows))
    cm = confusion_matrix(y_true, y_pred, len(classes))
    plot_confusion(cm, classes, out / "confusion_pooled.png",
                   title=f"{_protocol_name(plan)} pooled over {len(done)} folds: macro F1 "
                         f"{pooled['f1_macro']:.3f}")
    plot_folds([r["fold"] for r in rows], scores["f1_macro"], out / "folds.png",
               title=f"{plan['model']}, {_protocol_name(plan)}")
    summary["confusion_pooled"] = {"classes": classes, "counts": cm.tolist()}
    write_json(out / "summary.json", summary)
    return summary


def _classes(plan, out: Path) -> List[str]:
    """The class names, from a finished fold's checkpoint (the data folder may have moved)."""
    from har.checkpoint import load_checkpoint
    from har.cv.runner import is_finished

    first = next(out / f["name"] for f in plan["plan"] if is_finished(out / f["name"]))
    return list(load_checkpoint(first / "best.pt")["classes"])


def _protocol_name(plan) -> str:
    return "LOSO" if plan["folds"] == "loso" else f"{plan['folds']}-fold by " + (
        "case" if plan.get("subjects_are") == "cases" else "subject")


def _csv(rows: List[Dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r["fold"], " ".join(map(str, r["test_subjects"])), r["train_windows"],
                         r["test_windows"], *(f"{r[k]:.6f}" for k in SCORE_NAMES), r["epochs"],
                         f"{r['seconds']:.2f}"])
    return buf.getvalue()


def _versions() -> Dict[str, str]:
    import torch

    return {"harkit": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def format_table(summary: Dict[str, Any]) -> str:
    """One line per fold, like ``har train``'s epoch table, then mean, std and pooled."""
    head = (f"{'fold':<14} {'test':<16} {'windows':>7}  {'acc':>6}  {'P_macro':>7}  "
            f"{'R_macro':>7}  {'F1_macro':>8}  {'F1_w':>6}  {'epochs':>6}  {'seconds':>8}")
    lines = [head]

    def scores(d):
        return (f"{d['accuracy']:>6.4f}  {d['precision_macro']:>7.4f}  "
                f"{d['recall_macro']:>7.4f}  {d['f1_macro']:>8.4f}  {d['f1_weighted']:>6.4f}")

    for r in summary["folds"]:
        test = ",".join(map(str, r["test_subjects"]))
        test = test if len(test) <= 16 else test[:13] + "..."
        lines.append(f"{r['fold']:<14} {test:<16} {r['test_windows']:>7}  {scores(r)}  "
                     f"{r['epochs']:>6}  {r['seconds']:>8.1f}")
    for label, key in (("mean", "mean"), ("std", "std")):
        lines.append(f"{label:<14} {'':<16} {'':>7}  {scores(summary[key])}")
    lines.append(f"{'pooled':<14} {'':<16} {summary['pooled']['windows']:>7}  "
                 f"{scores(summary['pooled'])}")
    return "\n".join(lines)


def result_line(summary: Dict[str, Any]) -> str:
    """``LOSO macro F1 0.812 ± 0.061 (pooled 0.826), accuracy 0.851 ± 0.048 over 8 folds``."""
    p = summary["protocol"]
    name = "LOSO" if p["folds"] == "loso" else f"{p['folds']}-fold"
    m, s = summary["mean"], summary["std"]
    missing = summary["missing_folds"]
    return (f"{name} macro F1 {m['f1_macro']:.3f} ± {s['f1_macro']:.3f} (pooled "
            f"{summary['pooled']['f1_macro']:.3f}), accuracy {m['accuracy']:.3f} ± "
            f"{s['accuracy']:.3f} over {summary['folds_finished']} folds"
            + (f" ({len(missing)} of {summary['folds_planned']} not finished: "
               f"{', '.join(missing[:4])}{'...' if len(missing) > 4 else ''})" if missing else ""))
