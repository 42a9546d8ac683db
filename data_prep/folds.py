"""Subject-wise cross-validation folds of a prepared folder, leak-free.

:func:`plan` assigns whole subjects to folds: one fold per subject (leave-one-subject-out), or
``k`` folds of whole subjects balanced by their window counts. Where the "subjects" are case
indices (the UEA archive), ``k`` folds of cases stratified by class instead. :func:`fold_data`
builds one fold's data from every window of every split of the folder, grouped by subject:
the normalization stored at prepare time is undone, then refitted on the fold's training
subjects only and applied to all of its windows, so no statistic of a held-out subject reaches
its fold. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from data_prep.splits import fit_normalization
from data_prep.store import PreparedData, Split
from harkit.errors import HarError


@dataclass
class Fold:
    """One fold: its name (``fold-<subject>`` or ``fold-<k>``) and which subjects are where."""

    index: int                        # 1-based
    name: str
    test: List[Any]
    train: List[Any]
    val: List[Any] = field(default_factory=list)   # --select inner: held out of train

    def to_dict(self) -> Dict[str, Any]:
        return {"index": self.index, "name": self.name, "test": self.test, "train": self.train,
                "val": self.val}

    @classmethod
    def of(cls, d: Dict[str, Any]) -> "Fold":
        return cls(d["index"], d["name"], list(d["test"]), list(d["train"]), list(d["val"]))


def pooled(prepared: PreparedData):
    """Every window of every split: ``(x [N, T, C], y [N], subject [N])`` (views or copies)."""
    parts = [prepared.splits[s] for s in ("train", "val", "test") if s in prepared.splits]
    x = np.concatenate([np.asarray(p.x) for p in parts])
    y = np.concatenate([np.asarray(p.y) for p in parts])
    subject = np.concatenate([np.asarray(p.subject) for p in parts])
    return x, y, subject


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def plan(prepared: PreparedData, folds, seed: int = 0, inner: bool = False) -> List[Fold]:
    """The folds of ``prepared``: ``folds`` is ``"loso"`` or a number k >= 2. With ``inner``
    one training subject per fold (seeded) is held out for validation. HarError for too few
    subjects, k larger than the subjects, or LOSO over case indices."""
    parts = [prepared.splits[s] for s in ("train", "val", "test") if s in prepared.splits]
    y = np.concatenate([np.asarray(p.y) for p in parts])
    subject = np.concatenate([np.asarray(p.subject) for p in parts])
    subjects = sorted({_plain(s) for s in subject.tolist()}, key=_order)
    cases = prepared.meta.get("subjects_are") == "cases"
    if len(subjects) < 2:
        raise HarError(f"{prepared.path} holds {len(subjects)} subject(s); cross-validation "
                       "needs 2 or more")
    rng = np.random.default_rng(seed)
    if folds == "loso":
        if cases:
            raise HarError(f"{prepared.path}'s subjects are case indices (a "
                           f"{prepared.meta.get('dataset')} archive), so leave-one-subject-out "
                           "would hold out single cases; use --folds K (K folds of cases, "
                           "stratified by class)")
        groups = [[s] for s in subjects]
    else:
        k = int(folds)
        if k < 2:
            raise HarError(f"--folds {k}: pass 2 or more, or loso")
        if k > len(subjects):
            raise HarError(f"--folds {k} is more than the {len(subjects)} subjects of "
                           f"{prepared.path}; pass --folds {len(subjects)} or fewer (or loso)")
        groups = (_stratified_cases(y, subject, k, seed) if cases
                  else _balanced(subject, subjects, k, rng))
    out = []
    for i, test in enumerate(groups, start=1):
        train = [s for s in subjects if s not in set(test)]
        val = []
        if inner:
            val, train = _inner(train, y, subject, cases, rng, prepared)
        name = f"fold-{test[0]}" if folds == "loso" else f"fold-{i}"
        out.append(Fold(i, name, sorted(test, key=_order), train, val))
    return out


def _order(subject):
    return (0, subject, "") if isinstance(subject, (int, np.integer)) else (1, 0, str(subject))


def _balanced(subject: np.ndarray, subjects: List[Any], k: int, rng) -> List[List[Any]]:
    """k groups of whole subjects with window counts as equal as a greedy fill makes them:
    subjects by decreasing windows (ties in seeded random order), each to the lightest group."""
    counts = {s: int(np.count_nonzero(subject == s)) for s in subjects}
    order = sorted(subjects, key=lambda s: (-counts[s], rng.random()))
    groups: List[List[Any]] = [[] for _ in range(k)]
    load = [0] * k
    for s in order:
        g = min(range(k), key=lambda i: (load[i], len(groups[i]), i))
        groups[g].append(s)
        load[g] += counts[s]
    return [sorted(g, key=_order) for g in groups]


def _stratified_cases(y: np.ndarray, subject: np.ndarray, k: int, seed: int
                      ) -> List[List[Any]]:
    """k groups of cases (one window each), stratified by class (scikit-learn)."""
    from sklearn.model_selection import StratifiedKFold

    if np.bincount(y).max() < k or np.bincount(y)[np.bincount(y) > 0].min() < k:
        from sklearn.model_selection import KFold

        splitter = KFold(k, shuffle=True, random_state=seed).split(subject)
    else:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed).split(subject, y)
    return [sorted((_plain(s) for s in subject[test].tolist()), key=_order)
            for _, test in splitter]


def _inner(train: List[Any], y, subject, cases: bool, rng, prepared):
    """One training subject (a seeded choice), or for cases a tenth of them, held out."""
    if cases:
        chosen = rng.permutation(len(train))[:max(1, len(train) // 10)]
        val = sorted((train[i] for i in chosen), key=_order)
    else:
        if len(train) < 2:
            raise HarError(f"--select inner needs 2 or more training subjects per fold; "
                           f"{prepared.path} leaves {len(train)}: use --select last")
        val = [train[int(rng.integers(len(train)))]]
    return val, [s for s in train if s not in set(val)]


def fold_data(prepared: PreparedData, fold: Fold) -> PreparedData:
    """The fold as a :class:`PreparedData` (in memory): ``train``, ``val`` (when ``fold.val``)
    and ``test`` splits, normalized with statistics of the fold's training subjects only.

    The stored normalization is linear, so the raw statistics of the fold's training windows
    follow from those of their stored values (``mean_raw = mean * std0 + mean0``, ``std_raw =
    std * std0``), and one affine pass per window maps stored values to the fold's
    normalization: no pass back to raw units."""
    x, y, subject = pooled(prepared)                   # a fresh array: the folder stays as is
    norm = prepared.meta.get("normalization") or {}
    normalize = bool(norm.get("applied"))
    members = {"train": fold.train, "val": fold.val, "test": fold.test}
    splits = {}
    for split, chosen in members.items():
        if split == "val" and not chosen:
            continue
        mask = np.isin(subject, np.asarray(chosen, dtype=subject.dtype))
        splits[split] = Split(x[mask], y[mask], subject[mask])
    del x
    mean = std = None
    if normalize:
        mean0, std0 = np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)
        m, s = fit_normalization(splits["train"].x)       # of the stored (normalized) values
        mean, std = m * std0 + mean0, s * std0
        constant = ~(std > 1e-8)
        std[constant] = 1.0
        scale = (std0 / std).astype(np.float32)          # stored -> fold: x * scale + shift
        shift = ((mean0 - mean) / std).astype(np.float32)
        for part in splits.values():
            part.x *= scale
            part.x += shift
    meta = dict(prepared.meta)
    names = [c["name"] for c in meta["classes"]]
    meta["splits"] = {s: {"subjects": list(members[s]), "windows": len(p),
                          "per_class": {n: int(np.count_nonzero(p.y == k))
                                        for k, n in enumerate(names)}}
                      for s, p in splits.items()}
    meta["normalization"] = {
        "applied": normalize, "fitted_on": f"train subjects of {fold.name}" if normalize else None,
        "mean": None if mean is None else [float(v) for v in mean],
        "std": None if std is None else [float(v) for v in std]}
    meta["fold"] = fold.to_dict()
    return PreparedData(prepared.path, meta, splits)


def assignment_check(folds: List[Fold]) -> Optional[str]:
    """A problem with ``folds`` (a subject tested twice or never, train/test overlap), or None."""
    tested = [s for f in folds for s in f.test]
    if len(tested) != len(set(map(str, tested))):
        return "a subject is tested in more than one fold"
    for f in folds:
        if set(map(str, f.test)) & set(map(str, f.train + f.val)):
            return f"{f.name} trains on a subject it tests"
    return None
