"""Synthetic recordings in the exact PAMAP2 file format, for the demo, tests and benchmarks.

There is no copy of the real data here, so the generator imitates it closely enough that
results on it mean something:

* layout: ``OUT/Protocol/subjectNNN.dat`` (and ``OUT/Optional/`` for the subjects that have one in
  the real data); 54 space-separated columns at 100 Hz as :mod:`data_prep.pamap2` describes,
  ``NaN`` for missing values, at most 6 significant digits;
* structure: the protocol order with transient (activity 0) segments in between, heart rate at
  ~9 Hz, wireless dropouts (runs of ``NaN`` on one IMU), a few seconds missing inside some
  activities, subjects lacking activities as in the real data, subject 109 short;
* signals: each sensor's orientation is its body segment's posture (per activity, blended during
  transients) times a periodic swing and a slow wander, under a heading that drifts and turns.
  The accelerometers read gravity plus the activity's periodic linear acceleration in the sensor
  frame, the gyroscope the angular velocity of that orientation, the magnetometer the earth
  field rotated likewise. Subjects differ in cadence, amplitudes, postures and sensor mounting.

A recording is generated whole in memory (~0.6 GB at peak for the biggest full-size subject)
and written with pyarrow's CSV writer; big runs write files in parallel processes.
"""

from __future__ import annotations

import math
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from data_prep.datasets import pamap2
from harkit.errors import HarError
from harkit.files import atomic_dir
from harkit.progress import progress_bar

FS = pamap2.SAMPLE_RATE_HZ            # rows per second
G = 9.80665                           # m/s²
ACC_RANGE = {"acc16": 16 * G, "acc6": 6 * G}   # m/s², where each accelerometer saturates
EARTH_FIELD_UT = np.array([17.0, 0.0, -36.0])  # μT in the world frame (x: heading 0, z: up)
NOISE = {"acc16": 0.06, "acc6": 0.03, "gyro": 0.012, "mag": 0.4}   # white-noise std per unit
TEMP_BASE_C = {"hand": 32.0, "chest": 34.0, "ankle": 31.0}
TEMP_STEP_C = 0.0625                  # the sensors' temperature resolution, °C
TEMP_INTENSITY_C = {"hand": -1.5, "chest": 0.8, "ankle": -1.0}   # °C at full intensity
DROPOUT_SHARE = (0.005, 0.02)         # share of rows in runs of NaN, per recording
DROPOUT_ROWS = (1, 100)               # length of one dropout run, rows
GAP_PROBABILITY = 0.25                # chance an activity segment misses a few seconds
GAP_SECONDS = (1.0, 5.0)
MIN_SEGMENT_ROWS = 20
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

#: Sensor axes in the body segment's frame (x forward, y left, z up when standing upright):
#: chest y up like the real chest IMU, ankle x up along the shin, hand tilted on the wrist:
#: (roll, pitch, yaw) degrees, then an axis permutation as a quaternion (x, y, z, w).
_MOUNT_EULER_DEG = {"hand": (20.0, 0.0, 15.0), "chest": (0.0, 0.0, 0.0), "ankle": (0.0, 0.0, 0.0)}
_MOUNT_AXES = {"hand": (0.5, 0.5, 0.5, 0.5), "chest": (0.5, 0.5, 0.5, 0.5),
               "ankle": (-0.5, -0.5, -0.5, 0.5)}


# --------------------------------------------------------------------------- activity model
@dataclass(frozen=True)
class Part:
    """How one sensor's body segment moves during one activity.

    ``posture_deg``: (roll, pitch, yaw) of the segment relative to upright standing, degrees
    (pitch > 0 leans forward). ``mult``: the sensor's motion frequency as a multiple of the
    activity's cadence (0.5: once per stride). ``lin``: (forward, left, up) linear acceleration
    amplitude, m/s². ``rot``: (roll, pitch, yaw) swing amplitude, rad. ``h2``: relative 2nd
    harmonic. ``contact``: ground-contact share of a cycle; > 0 makes the vertical acceleration
    a train of half-sine impacts with flight in between (``lin[2] = G``: full flight).
    """

    posture_deg: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    mult: float = 1.0
    lin: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    rot: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    h2: float = 0.3
    contact: float = 0.0


@dataclass(frozen=True)
class Motion:
    """One activity: cadence (Hz, 0 = static), heart rate of an average subject (bpm), slow
    orientation wander (rad), heading change (rad/s), broadband vibration (m/s²), depth of a
    slow random amplitude modulation, and the three sensors' parts."""

    cadence_hz: float
    heart_bpm: float
    fidget: float = 0.05
    turn: float = 0.02
    vibration: float = 0.0
    irregular: float = 0.1
    hand: Part = Part()
    chest: Part = Part()
    ankle: Part = Part()


P = Part
MOTIONS: Dict[int, Motion] = {
    0: Motion(1.6, 95, fidget=0.12, turn=0.3, irregular=0.8,                  # transient
              hand=P(mult=0.5, lin=(1.5, 0.5, 1.0), rot=(0.05, 0.15, 0.08)),
              chest=P(lin=(0.5, 0.4, 1.0), rot=(0.02, 0.02, 0.04)),
              ankle=P(mult=0.5, lin=(3.0, 0.8, 2.5), rot=(0.03, 0.25, 0.05))),
    1: Motion(0, 75, fidget=0.03, turn=0.0,                                    # lying
              hand=P((70, -90, 0)), chest=P((0, -90, 0)), ankle=P((0, -85, 10))),
    2: Motion(0, 80, fidget=0.05,                                              # sitting
              hand=P((20, -80, 0)), chest=P((0, -10, 0)), ankle=P((0, 15, 0))),
    3: Motion(0, 88, fidget=0.06,                                              # standing
              hand=P((0, 5, 0)), chest=P((0, 3, 0))),
    4: Motion(1.9, 110, fidget=0.06, turn=0.25,                                # walking
              hand=P((0, 10, 0), 0.5, (3.5, 1.0, 2.0), (0.08, 0.35, 0.10)),
              chest=P((0, 6, 0), 1.0, (1.2, 0.8, 2.8), (0.04, 0.04, 0.06), h2=0.4),
              ankle=P((0, 0, 0), 0.5, (8.0, 1.5, 6.0), (0.05, 0.60, 0.08), h2=0.6)),
    5: Motion(2.8, 160, fidget=0.06, turn=0.2,                                 # running
              hand=P((0, -60, 0), 0.5, (6.0, 2.0, 5.0), (0.10, 0.60, 0.15)),
              chest=P((0, 10, 0), 1.0, (2.5, 1.5, 7.0), (0.05, 0.06, 0.08), contact=0.55),
              ankle=P((0, 0, 0), 0.5, (18.0, 4.0, 14.0), (0.10, 1.00, 0.10), contact=0.35)),
    6: Motion(1.35, 125, fidget=0.04, turn=0.1, vibration=0.5,                 # cycling
              hand=P((0, -55, 0), 1.0, (0.3, 0.3, 0.5), (0.02, 0.03, 0.02)),
              chest=P((0, 35, 0), 2.0, (0.4, 0.6, 0.6), (0.05, 0.02, 0.03)),
              ankle=P((0, 20, 0), 1.0, (11.0, 0.5, 11.0), (0.05, 0.45, 0.05), h2=0.1)),
    7: Motion(2.0, 125, fidget=0.06, turn=0.25,                                # Nordic walking
              hand=P((0, -20, 0), 0.5, (7.0, 1.5, 5.0), (0.10, 0.80, 0.15), h2=0.5,
                     contact=0.3),                                             # pole plants
              chest=P((0, 12, 0), 1.0, (1.6, 1.0, 3.2), (0.06, 0.05, 0.12), h2=0.4),
              ankle=P((0, 0, 0), 0.5, (9.0, 1.5, 7.0), (0.05, 0.65, 0.08), h2=0.6)),
    9: Motion(0, 72, fidget=0.04,                                              # watching TV
              hand=P((30, -85, 0)), chest=P((0, -25, 0)), ankle=P((0, 30, 0))),
    10: Motion(4.0, 78, fidget=0.04, irregular=0.9,                            # computer work
               hand=P((0, -85, -20), 1.0, (0.3, 0.3, 0.4), (0.02, 0.03, 0.02)),
               chest=P((0, 5, 0)), ankle=P((0, 15, 0))),
    11: Motion(0.15, 85, fidget=0.04, turn=0.15, vibration=0.4,                # car driving
               hand=P((40, -60, 0), 1.0, (0.3, 0.3, 0.2), (0.05, 0.05, 0.30)),
               chest=P((0, -15, 0)), ankle=P((0, 45, 0), 1.0, (0.2, 0.1, 0.2), (0, 0.05, 0))),
    12: Motion(1.45, 130, fidget=0.05, turn=0.5,                               # ascending stairs
               hand=P((0, 8, 0), 0.5, (2.0, 1.0, 2.0), (0.05, 0.20, 0.08)),
               chest=P((0, 20, 0), 1.0, (1.0, 0.8, 2.0), (0.03, 0.05, 0.06), h2=0.2),
               ankle=P((0, 10, 0), 0.5, (5.0, 1.5, 7.0), (0.05, 0.80, 0.08))),
    13: Motion(1.7, 110, fidget=0.05, turn=0.5,                                # descending stairs
               hand=P((0, 5, 0), 0.5, (2.0, 1.5, 2.5), (0.08, 0.20, 0.10)),
               chest=P((0, -3, 0), 1.0, (1.0, 1.0, 4.0), (0.04, 0.04, 0.06), contact=0.7),
               ankle=P((0, -5, 0), 0.5, (5.0, 1.5, 9.0), (0.05, 0.50, 0.08), contact=0.5)),
    16: Motion(0.7, 105, fidget=0.1, turn=0.4, irregular=0.5,                  # vacuum cleaning
               hand=P((0, -45, 0), 1.0, (4.0, 1.0, 1.0), (0.15, 0.30, 0.25)),
               chest=P((0, 20, 0), 1.0, (1.0, 0.5, 0.4), (0.05, 0.08, 0.20)),
               ankle=P((0, 0, 0), 1.0, (0.8, 0.5, 0.5), (0.02, 0.10, 0.05))),
    17: Motion(0.9, 90, fidget=0.05, turn=0.05, irregular=0.3,                 # ironing
               hand=P((-20, -70, 0), 1.0, (2.5, 1.0, 0.3), (0.08, 0.10, 0.20)),
               chest=P((0, 15, 0), 1.0, (0.2, 0.2, 0.1), (0.01, 0.01, 0.03))),
    18: Motion(0.5, 95, fidget=0.1, turn=0.1, irregular=0.6,                   # folding laundry
               hand=P((0, -60, 0), 1.0, (2.0, 2.0, 1.5), (0.30, 0.30, 0.40)),
               chest=P((0, 25, 0), 1.0, (0.3, 0.3, 0.2), (0.03, 0.05, 0.10))),
    19: Motion(1.0, 105, fidget=0.1, turn=0.4, irregular=0.6,                  # house cleaning
               hand=P((0, -40, 0), 1.0, (4.0, 3.0, 2.0), (0.30, 0.20, 0.30)),
               chest=P((0, 30, 0), 1.0, (0.8, 0.6, 0.8), (0.05, 0.10, 0.15)),
               ankle=P((0, 0, 0), 1.0, (1.5, 0.5, 1.5), (0.02, 0.15, 0.05))),
    20: Motion(2.6, 150, fidget=0.1, turn=0.8, irregular=0.9,                  # playing soccer
               hand=P((0, -50, 0), 0.5, (5.0, 2.0, 4.0), (0.10, 0.50, 0.15)),
               chest=P((0, 10, 0), 1.0, (2.5, 2.0, 6.0), (0.05, 0.06, 0.10), contact=0.6),
               ankle=P((0, 0, 0), 0.5, (16.0, 5.0, 12.0), (0.10, 0.90, 0.15), contact=0.4)),
    24: Motion(2.2, 165, fidget=0.04, turn=0.0,                                # rope jumping
               hand=P((0, -60, 0), 1.0, (3.0, 3.0, G), (0.30, 0.30, 0.10), contact=0.45),
               chest=P((0, 0, 0), 1.0, (0.8, 0.5, G), (0.02, 0.03, 0.02), contact=0.45),
               ankle=P((0, 10, 0), 1.0, (1.0, 0.5, G), (0.05, 0.25, 0.03), contact=0.4)),
}
assert set(MOTIONS) == set(pamap2.ACTIVITIES)


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
    traits = _Traits.draw(job.seed, job.subject)
    rng = np.random.default_rng([job.seed, job.subject, 1 + (job.folder == pamap2.OPTIONAL_DIR)])
    plan = _plan(job, rng)
    recording = _simulate(plan, traits, rng)
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


# --------------------------------------------------------------------------- subject traits
@dataclass
class _Traits:
    """What makes one subject differ from another; drawn from ``(seed, subject)`` alone, so it
    is the same in the subject's Protocol and Optional recordings."""

    cadence: Dict[int, float] = field(default_factory=dict)          # × Motion.cadence_hz
    gain: Dict[Tuple[int, str], float] = field(default_factory=dict)  # × amplitudes
    posture: Dict[Tuple[int, str], Rotation] = field(default_factory=dict)  # segment → upright
    mount: Dict[str, Rotation] = field(default_factory=dict)          # sensor → segment
    phase: Dict[str, float] = field(default_factory=dict)             # rad
    hr_rest: float = 75.0                                             # bpm
    hr_gain: float = 1.0
    temp_c: Dict[str, float] = field(default_factory=dict)
    mag_offset: Dict[str, np.ndarray] = field(default_factory=dict)   # μT, hard iron
    gyro_bias: Dict[str, np.ndarray] = field(default_factory=dict)    # rad/s
    acc6_scale: Dict[str, float] = field(default_factory=dict)
    declination: float = 0.0                                          # rad

    @classmethod
    def draw(cls, seed: int, subject: int) -> "_Traits":
        rng = np.random.default_rng([seed, subject, 0])
        t = cls()
        base_cadence = float(np.clip(rng.normal(1.0, 0.05), 0.9, 1.1))
        base_gain = {s: float(rng.lognormal(0.0, 0.15)) for s in pamap2.SENSORS}
        for a in sorted(MOTIONS):
            t.cadence[a] = base_cadence * float(rng.normal(1.0, 0.03))
            for s in pamap2.SENSORS:
                t.gain[a, s] = base_gain[s] * float(rng.lognormal(0.0, 0.1))
                jitter = Rotation.from_rotvec(rng.normal(0.0, math.radians(6), 3))
                t.posture[a, s] = _euler(getattr(MOTIONS[a], s).posture_deg) * jitter
        for s in pamap2.SENSORS:
            tilt = Rotation.from_rotvec(rng.normal(0.0, math.radians(10), 3))
            t.mount[s] = (tilt * _euler(_MOUNT_EULER_DEG[s])
                          * Rotation.from_quat(_MOUNT_AXES[s]))
            t.phase[s] = (math.pi if s == "hand" else 0.0) + float(rng.normal(0.0, 0.3))
            t.temp_c[s] = TEMP_BASE_C[s] + float(rng.normal(0.0, 1.0))
            t.mag_offset[s] = rng.normal(0.0, 10.0, 3)
            t.gyro_bias[s] = rng.normal(0.0, 0.01, 3)
            t.acc6_scale[s] = float(rng.normal(1.0, 0.01))
        t.hr_rest = float(rng.normal(75.0, 6.0))
        t.hr_gain = float(np.clip(rng.normal(1.0, 0.1), 0.75, 1.25))
        t.declination = float(rng.uniform(0.0, 2 * math.pi))
        return t


# --------------------------------------------------------------------------- simulation
def _simulate(plan: List[Tuple[int, int]], traits: _Traits, rng: np.random.Generator) -> dict:
    """Rows of one recording: ``timestamp`` [n] s, ``activity`` [n], ``heart_rate`` [n] bpm
    (NaN between readings), ``imu`` [n, 51] float32 in file order (NaN in dropouts)."""
    acts = [a for a, _ in plan]
    lengths = np.array([rows for _, rows in plan])
    n = int(lengths.sum())
    motions = [MOTIONS[a] for a in acts]
    heading = _heading(rng, n, lengths, motions, traits.declination)
    alpha, lin = _periodic(rng, acts, lengths, traits)
    fidget = _track(lengths, [m.fidget for m in motions], tau_s=1.0)[:, None]
    vibration = _track(lengths, [m.vibration for m in motions], tau_s=1.0)[:, None]
    intensity = _track(lengths, [(m.heart_bpm - 75) / 90 for m in motions], tau_s=240.0)
    blocks = []
    for s in pamap2.SENSORS:
        alpha_s = alpha[s] + fidget * _smooth_noise(rng, n, 0.25, 3)
        lin_s = lin[s] + 5.0 * fidget * _smooth_noise(rng, n, 0.8, 3)
        lin_s += vibration * rng.standard_normal((n, 3))
        posture = _postures(s, acts, lengths, traits)
        blocks.append(_imu_block(rng, s, posture, alpha_s, lin_s, heading, intensity, traits))
    imu = np.concatenate(blocks, axis=1)
    _round_significant(imu)
    _dropouts(rng, imu)
    start_cs = np.round(rng.uniform(5.0, 10.0) * 100)                   # centiseconds
    timestamp = (start_cs + np.arange(n)) / 100
    keep = _gaps(rng, acts, lengths)
    return {"timestamp": timestamp[keep],
            "activity": np.repeat(np.array(acts, dtype=np.int8), lengths)[keep],
            "heart_rate": _heart_rate(rng, lengths, motions, traits)[keep],
            "imu": imu[keep]}


def _imu_block(rng, sensor: str, posture: Rotation, alpha, lin, heading, intensity,
               traits: _Traits) -> np.ndarray:
    """The 17 columns of one IMU, [n, 17] float32 in ``pamap2.IMU_FIELDS`` order.

    ``posture`` [n] segment posture, ``alpha`` [n, 3] swing (rotation vector, rad, segment
    frame), ``lin`` [n, 3] linear acceleration (forward, left, up; m/s²), ``heading`` [n] rad,
    ``intensity`` [n] (0 = lying, 1 = running). The sensor's orientation is
    heading ⊗ posture ⊗ swing ⊗ mount.
    """
    n = lin.shape[0]
    body = posture * Rotation.from_rotvec(alpha) * traits.mount[sensor]
    specific_force = body.apply(lin + np.array([0.0, 0.0, G]), inverse=True)  # sensor frame
    q = Rotation.from_euler("z", heading[:, None]) * body

    def noise(modality: str) -> np.ndarray:
        return NOISE[modality] * rng.standard_normal((n, 3))

    values = {
        "temperature": _temperature(rng, sensor, intensity, traits)[:, None],
        "acc16": specific_force + noise("acc16"),
        "acc6": specific_force * traits.acc6_scale[sensor] + noise("acc6"),
        "gyro": _angular_velocity(q) + traits.gyro_bias[sensor] + noise("gyro"),
        "mag": q.apply(EARTH_FIELD_UT, inverse=True) + traits.mag_offset[sensor] + noise("mag"),
        "orientation": q.as_quat()[:, [3, 0, 1, 2]],                     # (w, x, y, z)
    }
    for name, limit in ACC_RANGE.items():
        np.clip(values[name], -limit, limit, out=values[name])
    block = np.concatenate([values[f] for f, _ in pamap2.IMU_FIELDS], axis=1)
    return block.astype(np.float32)


def _periodic(rng, acts: List[int], lengths: np.ndarray, traits: _Traits):
    """Per sensor: swing ``alpha`` [n, 3] (rad) and linear acceleration ``lin`` [n, 3] (m/s²)
    of every segment's periodic motion, faded in and out at the segment's ends."""
    n = int(lengths.sum())
    alpha = {s: np.zeros((n, 3)) for s in pamap2.SENSORS}
    lin = {s: np.zeros((n, 3)) for s in pamap2.SENSORS}
    start = 0
    for a, rows in zip(acts, lengths):
        m, stop = MOTIONS[a], start + int(rows)
        if m.cadence_hz > 0:
            freq_hz = m.cadence_hz * traits.cadence[a] * (1 + 0.03 * _smooth_noise(rng, rows, 0.1))
            phase = 2 * np.pi * np.cumsum(freq_hz) / FS + rng.uniform(0, 2 * np.pi)
            env = _envelope(rows) * np.clip(1 + m.irregular * _smooth_noise(rng, rows, 0.15), 0, 3)
            for s in pamap2.SENSORS:
                part, gain = getattr(m, s), traits.gain[a, s]
                theta = part.mult * phase + traits.phase[s]
                w = (env * gain)[:, None]
                lin[s][start:stop] = w * _linear_wave(theta, part)
                alpha[s][start:stop] = w * _swing_wave(theta, part)
        start = stop
    return alpha, lin


def _linear_wave(theta: np.ndarray, part: Part) -> np.ndarray:
    """[n, 3] (forward, left, up) linear acceleration, m/s², over phase ``theta`` (rad)."""
    fwd, left, up = part.lin
    if part.contact > 0:
        c = part.contact
        u = np.mod(theta / (2 * np.pi), 1.0)
        pulse = np.where(u < c, np.sin(np.pi * np.minimum(u / c, 1.0)), 0.0)
        vertical = up * (pulse * np.pi / (2 * c) - 1.0)     # mean 0: gravity holds the DC
    else:
        vertical = up * (np.sin(theta) + part.h2 * np.sin(2 * theta + 0.6))
    return np.stack([fwd * (np.cos(theta) + part.h2 * np.sin(2 * theta + 1.9)),
                     left * np.sin(theta + np.pi / 3), vertical], axis=1)


def _swing_wave(theta: np.ndarray, part: Part) -> np.ndarray:
    """[n, 3] rotation vector (roll, pitch, yaw), rad, over phase ``theta``."""
    roll, pitch, yaw = part.rot
    return np.stack([roll * np.cos(theta),
                     pitch * (np.sin(theta) + 0.3 * part.h2 * np.sin(2 * theta)),
                     yaw * np.sin(theta + np.pi / 4)], axis=1)


def _postures(sensor: str, acts: List[int], lengths: np.ndarray, traits: _Traits) -> Rotation:
    """[n] posture of the sensor's segment: the activity's during an activity, a smooth turn
    (slerp along the shortest arc, smoothstep in time) from the previous activity's to the
    next one's during a transient."""
    standing = traits.posture[3, sensor]
    poses = [None if a == pamap2.TRANSIENT_ID else traits.posture[a, sensor] for a in acts]
    out = []
    for k, (pose, rows) in enumerate(zip(poses, lengths)):
        if pose is not None:
            out.append(np.broadcast_to(pose.as_quat(), (rows, 4)))
            continue
        before = next((p for p in reversed(poses[:k]) if p is not None), standing)
        after = next((p for p in poses[k + 1:] if p is not None), standing)
        u = np.linspace(0.0, 1.0, rows)
        turn = Slerp([0.0, 1.0], Rotation.concatenate([before, after]))
        out.append(turn(u * u * (3 - 2 * u)).as_quat())
    return Rotation.from_quat(np.concatenate(out))


def _heading(rng, n: int, lengths, motions: List[Motion], declination: float) -> np.ndarray:
    """[n] heading (rad) relative to magnetic north: a random walk whose rate (rad/s) follows
    each activity's ``turn``."""
    rate = _track(lengths, [m.turn for m in motions], tau_s=2.0) * _smooth_noise(rng, n, 0.1)
    return declination + np.cumsum(rate) / FS


def _heart_rate(rng, lengths, motions: List[Motion], traits: _Traits) -> np.ndarray:
    """[n] bpm: follows each activity's level with a 20 s lag, integer readings at ~9 Hz,
    NaN between readings."""
    target = [traits.hr_rest + (m.heart_bpm - 75.0) * traits.hr_gain for m in motions]
    n = int(np.sum(lengths))
    hr = _track(lengths, target, tau_s=20.0) + 2.0 * _smooth_noise(rng, n, 0.05)
    out = np.full(n, np.nan)
    step = FS / pamap2.HEART_RATE_HZ
    at = (rng.uniform(0, step) + np.arange(0, n / step) * step).astype(np.int64)
    at = at[at < n]
    out[at] = np.round(hr[at])
    return out


def _temperature(rng, sensor: str, intensity: np.ndarray, traits: _Traits) -> np.ndarray:
    """[n] °C in the sensors' 1/16 °C steps: a subject base, a slow drift, an activity effect."""
    n = intensity.shape[0]
    temp = (traits.temp_c[sensor] + 0.6 * _smooth_noise(rng, n, 0.002)
            + TEMP_INTENSITY_C[sensor] * intensity)
    return np.round(temp / TEMP_STEP_C) * TEMP_STEP_C


def _gaps(rng, acts: List[int], lengths: np.ndarray) -> np.ndarray:
    """[n] bool rows kept: a few seconds go missing inside some activity segments."""
    keep = np.ones(int(lengths.sum()), dtype=bool)
    start = 0
    for a, rows in zip(acts, lengths):
        if a != pamap2.TRANSIENT_ID and rng.random() < GAP_PROBABILITY:
            gap = min(int(rng.uniform(*GAP_SECONDS) * FS), rows // 5)
            at = start + int(rng.uniform(0.2, 0.8) * (rows - gap))
            keep[at:at + gap] = False
        start += int(rows)
    return keep


def _dropouts(rng, imu: np.ndarray) -> None:
    """Wireless dropouts in place: runs of 1-100 rows where one IMU's 17 columns are NaN,
    0.5-2 % of the rows in all."""
    n = imu.shape[0]
    width = imu.shape[1] // len(pamap2.SENSORS)
    budget = rng.uniform(*DROPOUT_SHARE) * n
    lo, hi = DROPOUT_ROWS
    while budget >= 1:
        rows = int(min(budget, np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))))
        at, k = int(rng.integers(0, max(1, n - rows))), int(rng.integers(len(pamap2.SENSORS)))
        imu[at:at + rows, k * width:(k + 1) * width] = np.nan
        budget -= max(rows, 1)


# --------------------------------------------------------------------------- signal helpers
def _track(lengths, values, tau_s: float) -> np.ndarray:
    """[n] one value per segment, followed with a first-order lag of time constant ``tau_s``
    (s), starting at the first value: the exact step response, segment by segment."""
    decay = math.exp(-1.0 / (tau_s * FS))
    out = np.empty(int(np.sum(lengths)))
    level, start = float(values[0]), 0
    for value, rows in zip(values, lengths):
        out[start:start + rows] = value + (level - value) * decay ** np.arange(1, rows + 1)
        level, start = out[start + rows - 1], start + rows
    return out


def _smooth_noise(rng, n: int, cutoff_hz: float, dims: Optional[int] = None) -> np.ndarray:
    """Unit-variance Gaussian noise with a second-order low-pass spectrum (corner
    ``cutoff_hz``, Hz), shaped in the frequency domain; [n] or [n, dims]."""
    size = 1 << max(1, int(n - 1).bit_length())        # a power of two: a fast FFT
    white = rng.standard_normal((size,) if dims is None else (size, dims))
    gain = 1.0 / (1.0 + (np.fft.rfftfreq(size, 1.0 / FS) / cutoff_hz) ** 2)
    shaped = np.fft.irfft(np.fft.rfft(white, axis=0) * (gain if dims is None else gain[:, None]),
                          size, axis=0)[:n]
    both_sides = 2 * np.sum(gain ** 2) - gain[0] ** 2 - gain[-1] ** 2
    return shaped / math.sqrt(both_sides / size)


def _envelope(rows: int) -> np.ndarray:
    """[rows] 0 → 1 → 0: a smooth fade over min(1 s, 1/4 of the segment) at each end."""
    ramp = max(1.0, min(FS, rows / 4))
    i = np.arange(rows)
    u = np.clip(np.minimum(i, rows - 1 - i) / ramp, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _round_significant(x: np.ndarray, digits: int = 6) -> None:
    """Round float32 ``x`` in place to ``digits`` significant digits (at most 10 decimals),
    as the real files are; the CSV writer's shortest repr then prints e.g. ``2.37223``.

    Works in float32 with powers of ten up to 1e10, the largest exact in float32, so the
    quotient is the float32 nearest to the decimal."""
    powers = (10.0 ** np.arange(-8, 11)).astype(np.float32)
    chunk = 1 << 20
    flat = x.reshape(-1)
    for i in range(0, flat.size, chunk):
        v = flat[i:i + chunk]
        with np.errstate(divide="ignore", invalid="ignore"):
            exponent = np.floor(np.log10(np.abs(v)))
        k = np.clip(np.nan_to_num(digits - 1 - exponent, nan=0.0), -8, 10).astype(np.int64)
        p = powers[k + 8]
        v[...] = np.rint(v * p) / p + np.float32(0.0)        # + 0 turns -0 into 0


# --------------------------------------------------------------------------- rotations
# A rotation turns a sensor-frame vector into the world frame (x north-ish, z up). scipy's
# quaternions are (x, y, z, w) (``scalar_first`` needs scipy >= 1.14) and keep their sign
# through ``from_quat``, ``*``, ``inv`` and ``as_quat``, so the files' (w, x, y, z) and the
# gyroscope's derivative see the sign the products give.
def _euler(deg: Tuple[float, float, float]) -> Rotation:
    """(roll about x, pitch about y, yaw about z) in degrees → yaw ⊗ pitch ⊗ roll."""
    return Rotation.from_euler("xyz", deg, degrees=True)        # extrinsic: x first, z last


def _angular_velocity(q: Rotation) -> np.ndarray:
    """[n, 3] rad/s in the sensor frame of ``q`` [n] at 100 Hz: 2 · vec(q* ⊗ dq/dt), which for
    q = (w, v) is 2 · (w · dv/dt − dw/dt · v − v × dv/dt)."""
    quat = q.as_quat()                                          # (x, y, z, w)
    dq = np.gradient(quat, axis=0) * FS
    w, v, dw, dv = quat[:, 3:], quat[:, :3], dq[:, 3:], dq[:, :3]
    return 2 * (w * dv - dw * v - np.cross(v, dv))


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


# --------------------------------------------------------------------------- your own data
#: ``har synth csv``: a wrist-worn IMU study, the shape of the files users bring.
CSV_RATE_HZ = 50.0
CSV_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


def synth_csv(out: Path, *, seed: int = 0, seconds_per_activity: float = 30.0,
              subjects: Optional[List[int]] = None, force: bool = False,
              progress: bool = False) -> dict:
    """Write a synthetic study of your own recordings: ``out/P01.csv`` ... one file per
    subject, ``time,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z,activity,participant`` at 50 Hz.

    The signals are the hand IMU of the PAMAP2 body model above (acc ±16 g in m/s², gyroscope in
    rad/s) at every 2nd row, with its dropouts (empty cells) and missing seconds (timestamp
    gaps); ``activity`` holds the activity's name, empty between activities (no label);
    ``participant`` is ``P01``, ``P02``, ... for the PAMAP2 subjects 101, 102, ... (default
    101-106). Same ``seed``, same bytes; written into a temp folder and renamed.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    t0 = time.perf_counter()
    out = Path(out)
    chosen = _check_args(out, seed, seconds_per_activity,
                         subjects if subjects is not None else list(range(101, 107)), force,
                         ours=lambda name: bool(re.fullmatch(r"P\d\d\.csv", name)),
                         what="a folder of P01.csv ... files")
    hand = pamap2.SENSORS.index("hand") * (pamap2.NUM_COLUMNS - 3) // 3
    offsets = {"acc16": 1, "gyro": 7}
    rows = size = 0
    with atomic_dir(out, force) as tmp, progress_bar(
            length=len(chosen), label="synth csv", enabled=progress) as bar:
        for subject in chosen:
            job = _Job(pamap2.PROTOCOL_DIR, subject, seed, seconds_per_activity, False)
            rng = np.random.default_rng([seed, subject, 1])
            rec = _simulate(_plan(job, rng), _Traits.draw(seed, subject), rng)
            keep = slice(None, None, int(FS / CSV_RATE_HZ))
            columns = {"time": np.round(rec["timestamp"][keep] - 5.0, 2)}
            for name, first in offsets.items():
                for axis in range(3):
                    key = CSV_CHANNELS[(name == "gyro") * 3 + axis]
                    columns[key] = pa.array(rec["imu"][keep, hand + first + axis],
                                            from_pandas=True)
            names = [pamap2.ACTIVITIES[a] if a != pamap2.TRANSIENT_ID else None
                     for a in rec["activity"][keep].tolist()]
            columns["activity"] = pa.array(names, pa.string())
            columns["participant"] = pa.array([f"P{subject - 100:02d}"] * len(names))
            path = tmp / f"P{subject - 100:02d}.csv"
            table = pa.table(columns)
            with open(path, "wb") as fh:
                fh.write((",".join(table.column_names) + "\n").encode())
                pacsv.write_csv(table, fh, pacsv.WriteOptions(
                    include_header=False, quoting_style="none", null_string=""))
            rows += len(names)
            size += path.stat().st_size
            bar.update(1)
    return {"files": len(chosen), "rows": rows, "bytes": size, "path": str(out),
            "seconds": round(time.perf_counter() - t0, 3)}
