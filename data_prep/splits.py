"""Subject-wise splits and train-only normalization."""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

import numpy as np

from har.errors import HarError

SPLITS: Tuple[str, ...] = ("train", "val", "test")


def assign_subjects(available: Iterable[int], val: List[int], test: List[int]
                    ) -> Dict[str, List[int]]:
    """``{"train": [...], "val": [...], "test": [...]}``: val/test as given, train the rest.

    Raises HarError for a subject not present in the data, or an empty train split.
    """
    available = sorted(set(available))
    for option, chosen in (("--val-subjects", val), ("--test-subjects", test)):
        unknown = sorted(set(chosen) - set(available))
        if unknown:
            raise HarError(f"{option}: subject(s) {', '.join(map(str, unknown))} not in the data "
                           f"(found {', '.join(map(str, available))}); choose among those "
                           "or 'none'")
    held_out = set(val) | set(test)
    train = [s for s in available if s not in held_out]
    if not train:
        raise HarError("the train split is empty: --val-subjects and --test-subjects take every "
                       f"subject ({', '.join(map(str, available))}); leave some for training")
    return {"train": train, "val": sorted(val), "test": sorted(test)}


def fit_normalization(x_train: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (float64 ``[C]``) of train windows ``[N, T, C]``.

    A constant channel gets std 1 so that normalizing it cannot divide by zero.
    """
    flat = x_train.reshape(-1, x_train.shape[-1])
    mean = flat.mean(axis=0, dtype=np.float64)
    std = flat.std(axis=0, dtype=np.float64)
    std[~(std > 1e-8)] = 1.0
    return mean, std


def apply_normalization(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """``x [N, T, C]`` ← ``(x - mean) / std`` in place, float32."""
    x -= mean.astype(np.float32)
    x *= (1.0 / std).astype(np.float32)
