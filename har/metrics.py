"""Classification scores from label arrays: accuracy, macro precision/recall/F1, weighted F1,
per-class scores, confusion matrix (counts and row-normalized).

One ``np.bincount`` builds the confusion matrix; every score is derived from it. The results
equal scikit-learn's ``accuracy_score``, ``precision_score``/``recall_score``/``f1_score``
(``average="macro"``/``"weighted"``, ``zero_division=0``) with its default label set: the classes
that occur in ``y_true`` or ``y_pred`` (a class absent from both is not averaged in). Macro scores
matter on PAMAP2 because its classes are unbalanced.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

SCORE_NAMES = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted")


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``[K, K]`` int64 counts, rows = true class, columns = predicted class (labels 0..K-1)."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels, y_pred {y_pred.size}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` (broadcast) with 0 where ``den`` is 0 (sklearn's ``zero_division=0``)."""
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_scores(cm: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (float64 ``[K]``, 0 where undefined, like
    scikit-learn's ``zero_division=0``), ``support`` (true count) and ``predicted`` (predicted
    count) of a confusion matrix ``[K, K]``."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)     # true count per class
    predicted = cm.sum(axis=0)   # predicted count per class
    return {"precision": _ratio(tp, predicted), "recall": _ratio(tp, support),
            "f1": _ratio(2 * tp, support + predicted),   # = 2PR / (P + R), 0 when both are 0
            "support": support, "predicted": predicted}


def row_normalized(cm: np.ndarray) -> np.ndarray:
    """``cm [K, K]`` with each row divided by its sum (the share of each true class), 0 for an
    empty row."""
    cm = np.asarray(cm, dtype=np.float64)
    return _ratio(cm, cm.sum(axis=1, keepdims=True))


def scores_from_confusion(cm: np.ndarray) -> Dict[str, float]:
    """The :data:`SCORE_NAMES` scores (floats in [0, 1]) of a confusion matrix ``[K, K]``."""
    c = per_class_scores(cm)
    support = c["support"]
    total = support.sum()
    present = (support + c["predicted"]) > 0
    n_present = max(int(present.sum()), 1)
    return {
        "accuracy": float(np.trace(np.asarray(cm, dtype=np.float64)) / total) if total else 0.0,
        "precision_macro": float(c["precision"][present].sum() / n_present),
        "recall_macro": float(c["recall"][present].sum() / n_present),
        "f1_macro": float(c["f1"][present].sum() / n_present),
        "f1_weighted": float((c["f1"] * support).sum() / total) if total else 0.0,
    }


def classification_scores(y_true, y_pred, num_classes: int) -> Dict[str, float]:
    """Accuracy, macro precision/recall/F1 and weighted F1 of integer labels ``[N]``."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, num_classes))
