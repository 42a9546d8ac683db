"""``har evaluate``: where a checkpoint fails, on a split of a prepared folder.

:func:`evaluate` returns a report (a plain dict, written as-is by ``har evaluate --json``; the
schema is in docs/FORMAT.md): accuracy, macro and weighted F1, per-class precision / recall / F1
/ support, per-subject scores, and the confusion matrix as counts and row-normalized. Every
score comes from one confusion matrix (:mod:`har.metrics`), so the figures agree with each
other and with ``har train``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from har.checkpoint import load_checkpoint, model_from_checkpoint
from har.metrics import classification_scores, confusion_matrix, per_class_scores, row_normalized
from harkit.errors import HarError

FORMAT_NAME = "harkit.evaluation"
FORMAT_VERSION = 2
SPLITS = ("test", "val")


def evaluate(checkpoint, data=None, split: str = "test", device=None) -> Dict:
    """Score ``checkpoint`` on ``split`` of the prepared folder ``data`` (a path or a
    ``PreparedData``; default: the folder it was trained on) on ``device`` (default: CUDA when
    available, else the CPU), in float32 (:mod:`har.scoring`); HarError when the folder does not
    match the checkpoint."""
    from data_prep.store import PreparedData, load_prepared
    from har.device import resolve_device
    from har.scoring import score

    if split not in SPLITS:
        raise HarError(f"--split {split!r} is invalid; choose one of {', '.join(SPLITS)}")
    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    if data is None:
        data = data_folder_of(ckpt, path)
        if not Path(data).is_dir():
            raise HarError(f"{path} was trained on {data}, which no longer exists; pass --data "
                           "DIR (a folder prepared with the same options)")
    prepared = data if isinstance(data, PreparedData) else load_prepared(data)
    if ckpt.get("fold") and "fold" not in prepared.meta:    # a `har cv` fold: its own split
        from data_prep.folds import Fold, fold_data

        prepared = fold_data(prepared, Fold.of(ckpt["fold"]))
    _check_compatible(ckpt, prepared, path)
    part = prepared[split]
    if len(part) == 0:
        raise HarError(f"the {split} split of {prepared.path} holds no window; evaluate "
                       f"another --split or prepare with other --{split}-subjects")
    device = device if isinstance(device, torch.device) else resolve_device(device or "auto")
    model = model_from_checkpoint(ckpt, device)
    result = score(model, part.x, part.y, device=device)
    report = score_report(np.asarray(part.y), result["predictions"], np.asarray(part.subject),
                          list(ckpt["classes"]), list(ckpt.get("class_ids") or []))
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "checkpoint": str(path), "data": str(prepared.path), "split": split,
            "device": device.type, "inference_s": round(result["seconds"], 4),
            "loss": result["loss"], **report}


def data_folder_of(ckpt: Dict, path) -> str:
    """The prepared folder a checkpoint was trained on (``training.data``, as ``har train``
    records it); HarError when it does not say."""
    folder = (ckpt.get("training") or {}).get("data")
    if folder:
        return folder
    raise HarError(f"{path} does not record its data folder; pass --data DIR (the prepared "
                   "folder it was trained on)")


def _check_compatible(ckpt: Dict, prepared, path) -> None:
    expected = {"channels": list(ckpt["channels"]), "classes": list(ckpt["classes"]),
                "window": int(ckpt["input_shape"][1])}
    found = {"channels": prepared.channels, "classes": prepared.class_names,
             "window": prepared.window}
    for key, value in expected.items():
        if found[key] != value:
            raise HarError(f"--data {prepared.path} has {_shown(found[key], key)} but {path} "
                           f"was trained on {_shown(value, key)}; pass the prepared folder it "
                           "was trained on (or one prepared with the same options)")


def _shown(value, key: str) -> str:
    """``12 channels`` for a list, ``171 steps`` for a window length."""
    return f"{len(value)} {key}" if isinstance(value, list) else f"{value} steps"


def score_report(y_true: np.ndarray, y_pred: np.ndarray, subject: np.ndarray,
                 classes: List[str], class_ids: Optional[List[int]] = None) -> Dict:
    """Every figure of the report from labels ``[N]`` (class indices) and subject IDs ``[N]``."""
    k = len(classes)
    cm = confusion_matrix(y_true, y_pred, k)
    per_class = per_class_scores(y_true, y_pred, k)
    ids = class_ids if class_ids and len(class_ids) == k else [None] * k
    normalized = row_normalized(cm)
    subjects = []
    for s in np.unique(subject):
        mask = subject == s
        scores = classification_scores(y_true[mask], y_pred[mask])
        subjects.append({"subject": s.item(), "windows": int(mask.sum()),
                         "accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"]})
    return {
        "windows": int(y_true.size),
        "overall": classification_scores(y_true, y_pred),
        "per_class": [{"label": i, "id": ids[i], "name": classes[i],
                       **{m: float(per_class[m][i]) for m in ("precision", "recall", "f1")},
                       "support": int(per_class["support"][i])} for i in range(k)],
        "per_subject": subjects,
        "confusion_matrix": {"classes": list(classes), "counts": cm.tolist(),
                             "normalized": normalized.round(6).tolist()},
    }


def format_report(report: Dict) -> str:
    """The report as text tables: per class, overall, per subject, confusion matrices."""
    lines = [f"{report['checkpoint']} on the {report['split']} split of {report['data']} "
             f"({report['windows']} windows)", "",
             f"{'id':>3}  {'activity':<18} {'precision':>9} {'recall':>7} {'F1':>7} "
             f"{'support':>8}",
             f"{'--':>3}  {'-' * 18} {'-' * 9} {'-' * 7} {'-' * 7} {'-' * 8}"]
    heads = [_head(c) for c in report["per_class"]]
    for c, head in zip(report["per_class"], heads):
        lines.append(f"{head:>3}  {c['name']:<18} {c['precision']:>9.4f} {c['recall']:>7.4f} "
                     f"{c['f1']:>7.4f} {c['support']:>8}")
    o = report["overall"]
    lines += ["", f"accuracy {o['accuracy']:.4f}   macro F1 {o['f1_macro']:.4f}   weighted F1 "
              f"{o['f1_weighted']:.4f}   macro precision {o['precision_macro']:.4f}   macro "
              f"recall {o['recall_macro']:.4f}", "",
              f"{'subject':>7}  {'windows':>7}  {'accuracy':>8}  {'macro F1':>8}"]
    for s in report["per_subject"]:
        lines.append(f"{s['subject']:>7}  {s['windows']:>7}  {s['accuracy']:>8.4f}  "
                     f"{s['f1_macro']:>8.4f}")
    cm = report["confusion_matrix"]
    for title, key, fmt in (("confusion matrix (rows: true, columns: predicted; by id)",
                             "counts", "{:>5d}"),
                            ("row-normalized (% of each true activity)", "normalized",
                             "{:>5.0f}")):
        lines += ["", title, f"{'':>3}  {'':<18}" + "".join(f"{h:>5}" for h in heads)]
        for head, name, row in zip(heads, cm["classes"], cm[key]):
            values = [v * 100 for v in row] if key == "normalized" else row
            lines.append(f"{head:>3}  {name:<18}" + "".join(fmt.format(v) for v in values))
    return "\n".join(lines)


def _head(c: Dict) -> str:
    """A class's short column head: the dataset's numeric id (PAMAP2's activityID), else its
    label index."""
    cid = c.get("id")
    return str(cid) if isinstance(cid, int) and not isinstance(cid, bool) else str(c["label"])
