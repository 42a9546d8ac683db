"""Classification scores of integer labels ``[N]``, computed by scikit-learn.

Accuracy, macro precision / recall / F1 and weighted F1 (:data:`SCORE_NAMES`) use
scikit-learn's default label set for averaging: the classes that occur in ``y_true`` or
``y_pred`` (a class absent from both is not averaged in), with ``zero_division=0``. Macro scores
matter in HAR because classes are unbalanced. Per-class scores and the confusion matrix cover
every class ``0 .. K-1``.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
from sklearn import metrics as skm

SCORE_NAMES = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted")


def _labels(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels, y_pred {y_pred.size}")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``[K, K]`` int64 counts, rows = true class, columns = predicted class (labels 0..K-1)."""
    y_true, y_pred = _labels(y_true, y_pred)
    return skm.confusion_matrix(y_true, y_pred, labels=np.arange(num_classes)).astype(np.int64)


def per_class_scores(y_true, y_pred, num_classes: int) -> Dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (float64 ``[K]``, 0 where undefined) and
    ``support`` (true windows, int64 ``[K]``) for every class 0..K-1."""
    y_true, y_pred = _labels(y_true, y_pred)
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(num_classes), average=None, zero_division=0)
    return {"precision": p, "recall": r, "f1": f, "support": s.astype(np.int64)}


def classification_scores(y_true, y_pred) -> Dict[str, float]:
    """The :data:`SCORE_NAMES` scores (floats in [0, 1]) over scikit-learn's label set (see the
    module docstring); all 0 for no labels."""
    y_true, y_pred = _labels(y_true, y_pred)
    if y_true.size == 0:
        return dict.fromkeys(SCORE_NAMES, 0.0)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average="macro",
                                                     zero_division=0)
    weighted = skm.f1_score(y_true, y_pred, average="weighted", zero_division=0)
    return {"accuracy": float(skm.accuracy_score(y_true, y_pred)), "precision_macro": float(p),
            "recall_macro": float(r), "f1_macro": float(f), "f1_weighted": float(weighted)}


def row_normalized(cm: np.ndarray) -> np.ndarray:
    """``cm [K, K]`` with each row divided by its sum (the share of each true class), 0 for an
    empty row."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, total, out=np.zeros_like(cm), where=total > 0)
