"""``har cv``: subject-wise cross-validation, fold by fold, into one report.

* :mod:`data_prep.folds` plans the folds (LOSO, k folds of whole subjects, or k stratified folds
  of cases) and builds each fold's data with normalization refitted on its training subjects;
* :mod:`har.cv.runner` trains the folds (each a normal run folder ``OUT/fold-<name>/``, resumed or
  skipped when an earlier run got that far), one after another or ``jobs`` at a time in separate
  processes;
* :mod:`har.cv.report` turns the finished folds into ``cv.csv``, ``summary.json`` and two PNGs.

``OUT/plan.json`` holds the plan, so ``--fold K`` jobs on a cluster and ``--report`` later agree on
it. This package imports torch only inside the functions that train.
"""

from har.cv.report import report
from har.cv.runner import run

__all__ = ["run", "report"]
