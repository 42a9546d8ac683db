"""``har synth pamap2``: recordings in the exact PAMAP2 file format, for the demo, tests and
benchmarks.

There is no copy of the real data here, so the generator imitates it closely enough that
results on it mean something:

* layout: ``OUT/Protocol/subjectNNN.dat`` (and ``OUT/Optional/`` for the subjects that have one in
  the real data); 54 space-separated columns at 100 Hz as :mod:`data_prep.datasets.pamap2`
  describes, ``NaN`` for missing values, at most 6 significant digits;
* structure: the protocol order with transient (activity 0) segments in between, heart rate at
  ~9 Hz, wireless dropouts (runs of ``NaN`` on one IMU), a few seconds missing inside some
  activities, subjects lacking activities as in the real data, subject 109 short;
* signals: :mod:`data_prep.synth.body`.

A recording is generated whole in memory (~0.6 GB at peak for the biggest full-size subject)
and written with pyarrow's CSV writer; big runs write files in parallel processes.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from data_prep.datasets import pamap2
from data_prep.synth.body import FS, MIN_SEGMENT_ROWS, Traits, simulate
from harkit.errors import HarError
from harkit.files import atomic_dir
from harkit.progress import progress_bar

PARALLEL_ROWS = 400_000               # above this many rows in all, write files in processes
MAX_WORKERS = 2                       # processes; each holds one recording (≤ ~0.7 GB)

#: The protocol order the real subjects followed.
PROTOCOL_ORDER: Tuple[int, ...] = (1, 2, 3, 17, 16, 12, 13, 4, 7, 6, 5, 24)
#: Protocol activities absent for some subjects, and subject 109's short recording, as in the
#: real data (105 and 106, the default val/test subjects, have all twelve).
MISSING: Dict[int, Tuple[int, ...]] = {103: (5, 6, 7, 24), 104: (24,), 107: (24,)}
ONLY: Dict[int, Tuple[int, ...]] = {109: (2, 3, 24)}
#: Optional activities per subject that has an Optional recording.
OPTIONAL_PLAN: Dict[int, Tuple[int, ...]] = {
    101: (9, 10, 11, 18, 19), 105: (10, 18, 19), 106: (10, 11, 18, 19),
    108: (9, 10, 11, 18, 19, 20), 109: (10, 11, 18, 19, 20),
}
assert tuple(OPTIONAL_PLAN) == pamap2.OPTIONAL_SUBJECTS

#: Full size only: relative activity durations of the real Protocol folder, the share of
#: transient rows, the number of up/down bouts on the stairs, seconds per optional activity.
FULL_SIZE_WEIGHTS = {4: 1.3, 5: 0.6, 12: 0.7, 13: 0.65, 17: 1.3, 24: 0.35}
FULL_SIZE_TRANSIENT_SHARE = 0.32
FULL_SIZE_STAIRS_BOUTS = 2
FULL_SIZE_NOMINAL_S = 180.0

# --------------------------------------------------------------------------- public API
def synth_pamap2(out: Path, *, seed: int = 0, seconds_per_activity: float = 60.0,
                 subjects: Optional[List[int]] = None, optional: bool = False,
                 full_size: bool = False, force: bool = False, progress: bool = False) -> dict:
    """Write synthetic PAMAP2 recordings to ``out``; return ``{"files", "rows", "bytes",
    "path", "seconds"}``.

    ``out/Protocol/subjectNNN.dat`` for each subject (101-109 by default), and with
    ``optional`` ``out/Optional/subjectNNN.dat`` for those of them with optional recordings.
    Each activity lasts ``seconds_per_activity`` (s) ±20 %; ``full_size`` instead reproduces
    the real Protocol folder (~2.87 M rows, ~1.3 GB). Same ``seed``, same bytes. Written into a
    temp folder beside ``out`` and renamed at the end; an existing ``out`` is refused unless
    ``force``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    chosen = _check_args(out, seed, seconds_per_activity, subjects, force)
    jobs = [_Job(pamap2.PROTOCOL_DIR, s, seed, seconds_per_activity, full_size) for s in chosen]
    if optional:
        jobs += [_Job(pamap2.OPTIONAL_DIR, s, seed, seconds_per_activity, full_size)
                 for s in chosen if s in OPTIONAL_PLAN]
    with atomic_dir(out, force) as tmp:
        with progress_bar(length=len(jobs), label="synth pamap2", enabled=progress) as bar:
            results = _run_jobs(jobs, tmp, _workers(jobs), bar)
    return {"files": len(results), "rows": sum(r for r, _ in results),
            "bytes": sum(b for _, b in results), "path": str(out),
            "seconds": round(time.perf_counter() - t0, 3)}


def _check_args(out: Path, seed, seconds_per_activity, subjects, force,
                ours=lambda name: name in (pamap2.PROTOCOL_DIR, pamap2.OPTIONAL_DIR),
                what: str = "a folder with Protocol/ and Optional/ in it") -> List[int]:
    """Validate the arguments at the boundary; return the sorted subject IDs. ``--force``
    replaces an existing ``out`` only when every entry in it is ``ours``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise HarError(f"--seed must be an integer >= 0, got {seed!r}")
    if not (isinstance(seconds_per_activity, (int, float)) and
            0 < seconds_per_activity <= 3600):
        raise HarError(f"--seconds-per-activity must be in (0, 3600] s, got "
                       f"{seconds_per_activity!r}; use --full-size for the real data's size")
    chosen = list(pamap2.SUBJECTS) if subjects is None else list(subjects)
    bad = [s for s in chosen if s not in pamap2.SUBJECTS or isinstance(s, bool)]
    if bad or not chosen:
        raise HarError(f"--subjects must be IDs within {pamap2.SUBJECTS[0]}-{pamap2.SUBJECTS[-1]}"
                       f", got {bad if bad else 'none'}")
    if out.exists() and not out.is_dir():
        raise HarError(f"{out} is a file, not a folder; choose another OUT")
    if out.exists() and not force:
        raise HarError(f"{out} already exists; pass --force to replace it or choose another OUT")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not ours(p.name))
        if foreign:
            raise HarError(f"{out} holds more than synthetic recordings ({', '.join(foreign[:3])}"
                           f"{', ...' if len(foreign) > 3 else ''}); --force replaces only "
                           f"{what}: choose another OUT")
    return sorted({int(s) for s in chosen})


# --------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class _Job:
    """One file to write: ``<folder>/subject<subject>.dat``."""

    folder: str
    subject: int
    seed: int
    seconds_per_activity: float
    full_size: bool

    def estimated_rows(self) -> float:
        """Rows the file will have, roughly (12 activities and their transients)."""
        if self.full_size and self.folder == pamap2.PROTOCOL_DIR:
            return pamap2.PROTOCOL_ROWS[self.subject]
        seconds = FULL_SIZE_NOMINAL_S if self.full_size else self.seconds_per_activity
        return 16 * seconds * FS


def _workers(jobs: Sequence[_Job]) -> int:
    """Processes to use: one per core, at most ``MAX_WORKERS``, for runs of more than
    ``PARALLEL_ROWS`` rows; else 1 (in-process)."""
    if sum(j.estimated_rows() for j in jobs) <= PARALLEL_ROWS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, len(jobs), MAX_WORKERS))


def _run_jobs(jobs: Sequence[_Job], folder: Path, workers: int, bar) -> List[Tuple[int, int]]:
    """Write every job's file under ``folder``; return ``[(rows, bytes), ...]`` in job order."""
    for job in jobs:
        (folder / job.folder).mkdir(exist_ok=True)
    if workers <= 1:
        results = []
        for job in jobs:
            results.append(_write_job(job, folder))
            bar.update(1)
        return results
    # spawn, not fork: the parent may hold pyarrow/BLAS threads that a fork would break.
    # Biggest files first, so no process is left with a big one at the end.
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].estimated_rows())
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_write_job, jobs[i], folder): i for i in order}
        results: List[Tuple[int, int]] = [(0, 0)] * len(jobs)
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def _write_job(job: _Job, folder: Path) -> Tuple[int, int]:
    """Generate and write one recording; return (rows, bytes)."""
    traits = Traits.draw(job.seed, job.subject)
    rng = np.random.default_rng([job.seed, job.subject, 1 + (job.folder == pamap2.OPTIONAL_DIR)])
    plan = _plan(job, rng)
    recording = simulate(plan, traits, rng)
    path = folder / job.folder / f"subject{job.subject}.dat"
    _write_dat(path, recording)
    return recording["timestamp"].shape[0], path.stat().st_size


# --------------------------------------------------------------------------- plan
def _plan(job: _Job, rng: np.random.Generator) -> List[Tuple[int, int]]:
    """The recording's segments ``[(activity_id, rows), ...]``: transient, activity, transient,
    ..., transient. Activity durations vary ±20 % around the nominal seconds."""
    protocol = job.folder == pamap2.PROTOCOL_DIR
    if protocol:
        acts = list(ONLY.get(job.subject) or
                    [a for a in PROTOCOL_ORDER if a not in MISSING.get(job.subject, ())])
    else:
        acts = list(OPTIONAL_PLAN[job.subject])
    weights = [1.0] * len(acts)
    if job.full_size and protocol:
        acts, weights = _full_size_activities(acts)
    nominal = FULL_SIZE_NOMINAL_S if job.full_size else job.seconds_per_activity
    act_s = np.array(weights) * nominal * rng.uniform(0.8, 1.2, len(acts))
    trans_s = max(2.0, 0.25 * nominal) * rng.uniform(0.6, 1.4, len(acts) + 1)
    if job.full_size and protocol:
        share = FULL_SIZE_TRANSIENT_SHARE
        trans_s *= share / (1 - share) * act_s.sum() / trans_s.sum()
        scale = pamap2.PROTOCOL_ROWS[job.subject] / FS / (act_s.sum() + trans_s.sum())
        act_s, trans_s = act_s * scale, trans_s * scale
    plan = [(pamap2.TRANSIENT_ID, trans_s[0])]
    for a, s_act, s_trans in zip(acts, act_s, trans_s[1:]):
        plan += [(a, s_act), (pamap2.TRANSIENT_ID, s_trans)]
    return [(a, max(MIN_SEGMENT_ROWS, int(round(s * FS)))) for a, s in plan]


def _full_size_activities(acts: List[int]) -> Tuple[List[int], List[float]]:
    """Full size: the real subjects climbed the stairs in bouts (up, down, up, down, ...) and
    spent more or less time on each activity; return (activities, relative durations)."""
    out: List[int] = []
    for a in acts:
        if a == 12:
            out += [12, 13] * FULL_SIZE_STAIRS_BOUTS
        elif a != 13:
            out.append(a)
    weights = [FULL_SIZE_WEIGHTS.get(a, 1.0) / (FULL_SIZE_STAIRS_BOUTS if a in (12, 13) else 1)
               for a in out]
    return out, weights


# --------------------------------------------------------------------------- writing
def _write_dat(path: Path, recording: dict) -> None:
    """Write one recording as PAMAP2 text: 54 space-separated columns, ``NaN`` when missing."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    imu = recording["imu"]
    arrays = [pa.array(recording["timestamp"]), pa.array(recording["activity"]),
              pa.array(recording["heart_rate"], from_pandas=True)]
    arrays += [pa.array(np.ascontiguousarray(imu[:, j]), from_pandas=True)
               for j in range(imu.shape[1])]
    table = pa.Table.from_arrays(arrays, names=list(pamap2.COLUMNS))
    options = pacsv.WriteOptions(include_header=False, delimiter=" ", quoting_style="none",
                                 null_string="NaN", batch_size=1 << 16)
    pacsv.write_csv(table, str(path), options)


