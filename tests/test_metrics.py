"""har.metrics against scikit-learn: same confusion matrix and scores, absent classes included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from har.metrics import (SCORE_NAMES, classification_scores, confusion_matrix, per_class_scores,
                         row_normalized)


def _sklearn_scores(y_true, y_pred):
    kw = {"zero_division": 0}
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision_macro": skm.precision_score(y_true, y_pred, average="macro", **kw),
        "recall_macro": skm.recall_score(y_true, y_pred, average="macro", **kw),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro", **kw),
        "f1_weighted": skm.f1_score(y_true, y_pred, average="weighted", **kw),
    }


@pytest.mark.parametrize("seed", range(6))
def test_scores_equal_sklearn_on_random_unbalanced_labels(seed):
    rng = np.random.default_rng(seed)
    k = 12
    p = rng.dirichlet(np.ones(k) * 0.7)                # unbalanced; some classes may be absent
    y_true = rng.choice(k, size=300, p=p)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, k, 300))
    if seed % 2:
        y_pred[y_pred == 3] = 4                          # a class never predicted
    ours = classification_scores(y_true, y_pred, k)
    theirs = _sklearn_scores(y_true, y_pred)
    assert tuple(ours) == SCORE_NAMES
    for name in SCORE_NAMES:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-12), name


def test_confusion_matrix_equals_sklearn_rows_true_columns_predicted():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    cm = confusion_matrix(y_true, y_pred, 7)
    assert cm.shape == (7, 7) and cm.dtype == np.int64
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(7)))
    assert confusion_matrix([0, 0, 1], [0, 1, 1], 2).tolist() == [[1, 1], [0, 1]]


def test_edge_cases_perfect_wrong_and_class_only_predicted():
    y = np.array([0, 1, 2, 2])
    assert all(v == 1.0 for v in classification_scores(y, y, 5).values())
    wrong = classification_scores(y, (y + 1) % 3, 3)
    assert wrong["accuracy"] == 0.0 and wrong["f1_macro"] == 0.0
    # class 3 is predicted but never true: it counts in the macro average (sklearn's label set)
    y_pred = np.array([0, 1, 2, 3])
    ours = classification_scores(y, y_pred, 5)
    theirs = _sklearn_scores(y, y_pred)
    for name in SCORE_NAMES:
        assert ours[name] == pytest.approx(theirs[name])


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)


def test_per_class_scores_and_row_normalized_handle_empty_classes():
    cm = np.array([[2, 0, 0], [1, 0, 0], [0, 0, 0]])
    scores = per_class_scores(cm)
    np.testing.assert_allclose(scores["precision"], [2 / 3, 0, 0])
    np.testing.assert_allclose(scores["recall"], [1, 0, 0])
    np.testing.assert_allclose(scores["f1"], [0.8, 0, 0])
    np.testing.assert_array_equal(scores["support"], [2, 1, 0])
    np.testing.assert_allclose(row_normalized(cm), [[1, 0, 0], [1, 0, 0], [0, 0, 0]])


def test_per_class_scores_equal_sklearn():
    rng = np.random.default_rng(7)
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 6, 200)
    scores = per_class_scores(confusion_matrix(y_true, y_pred, 7))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=range(7),
                                                     zero_division=0)
    for name, expected in (("precision", p), ("recall", r), ("f1", f), ("support", s)):
        np.testing.assert_allclose(scores[name], expected, err_msg=name)
