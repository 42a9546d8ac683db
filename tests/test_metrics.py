"""har.metrics: the label sets and edge cases reports rely on (the arithmetic is scikit-learn's)."""

from __future__ import annotations

import numpy as np
import pytest

from har.metrics import (
    SCORE_NAMES,
    classification_scores,
    confusion_matrix,
    per_class_scores,
    row_normalized,
)


def test_macro_scores_average_the_classes_seen_not_every_class():
    """A class absent from both the labels and the predictions does not drag the macro
    average down; one only predicted does (it has precision 0)."""
    y = np.array([0, 1, 2, 2])
    assert classification_scores(y, y) == dict.fromkeys(SCORE_NAMES, 1.0)
    assert tuple(classification_scores(y, y)) == SCORE_NAMES
    wrong = classification_scores(y, (y + 1) % 3)
    assert wrong["accuracy"] == 0.0 and wrong["f1_macro"] == 0.0
    predicted_only = classification_scores(y, np.array([0, 1, 2, 3]))   # class 3 never true
    assert predicted_only["f1_macro"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    assert predicted_only["f1_weighted"] == pytest.approx((1 + 1 + 2 * 2 / 3) / 4)


def test_confusion_matrix_covers_every_class_rows_true_columns_predicted():
    cm = confusion_matrix([0, 0, 1], [0, 1, 1], 4)
    assert cm.dtype == np.int64 and cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0],
                                                     [0, 0, 0, 0]]


def test_mismatched_lengths_raise_and_no_labels_score_zero():
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError):
        classification_scores([0, 1], [0])
    assert classification_scores([], []) == dict.fromkeys(SCORE_NAMES, 0.0)


def test_per_class_scores_and_row_normalized_handle_empty_classes():
    y_true, y_pred = np.array([0, 0, 1]), np.array([0, 0, 0])     # class 2: never seen
    scores = per_class_scores(y_true, y_pred, 3)
    np.testing.assert_allclose(scores["precision"], [2 / 3, 0, 0])
    np.testing.assert_allclose(scores["recall"], [1, 0, 0])
    np.testing.assert_allclose(scores["f1"], [0.8, 0, 0])
    np.testing.assert_array_equal(scores["support"], [2, 1, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_allclose(row_normalized(cm), [[1, 0, 0], [1, 0, 0], [0, 0, 0]])
