"""``har synth wisdm``: ``WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt`` in the exact WISDM v1.1 raw format
(:mod:`data_prep.datasets.wisdm`), flaws included.

Records ``user,activity,timestamp,x,y,z;`` at 20 Hz: the body model's ankle accelerometer stands
in for the trouser-pocket phone (m/s²), the timestamp is nanoseconds of a phone clock that
jitters (steps of 50 ms +- 10 ms, one in ten twice as long) and restarts now and then (time going
back between some bouts). Each user performs the 6 activities
in bouts, with the time between bouts missing. The flaws of the real file are reproduced at
fixed rates: several records on one line, a ``,`` before the ``;``, empty values, timestamps of
0, repeated timestamps, and records cut short. ``full_size`` writes about as many records as the
real file (1,098,207) with its activity shares.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from data_prep.datasets import wisdm
from data_prep.synth.body import FS, Traits, plan, sensor_columns, simulate
from data_prep.synth.mhealth import _check_out
from harkit.errors import HarError
from harkit.files import atomic_dir
from harkit.progress import progress_bar

#: WISDM activity -> the body model's activity.
MOTION_OF = {"Walking": 4, "Jogging": 105, "Upstairs": 12, "Downstairs": 13, "Sitting": 2,
             "Standing": 3}
STEP = int(FS / wisdm.RATE_HZ)
#: The real file's records per activity (its readme), for ``full_size``.
FULL_SIZE_RECORDS = {"Walking": 424_400, "Jogging": 342_177, "Upstairs": 122_869,
                     "Downstairs": 100_427, "Sitting": 59_939, "Standing": 48_395}
#: Flaw rates, per record.
MULTI_RECORD_LINES = 0.01
TRAILING_COMMA = 0.005
EMPTY_VALUE = 0.0002
ZERO_TIMESTAMP = 0.0002
REPEATED_TIMESTAMP = 0.001
CUT_SHORT = 0.0001
#: Share of steps between records twice the nominal 50 ms (the real phones' clocks jitter).
STEP_DOUBLED = 0.1


def synth_wisdm(out: Path, *, seed: int = 0, seconds_per_activity: float = 20.0,
                subjects: Optional[List[int]] = None, full_size: bool = False,
                force: bool = False, progress: bool = False) -> dict:
    """Write ``out/WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt`` for the users (1-36 by default); return
    ``{"files", "rows" (records), "bytes", "path", "seconds"}``. Same seed, same bytes."""
    t0 = time.perf_counter()
    out = Path(out)
    chosen = sorted(set(subjects or wisdm.USERS))
    if any(s not in wisdm.USERS for s in chosen):
        raise HarError(f"--subjects must be WISDM users 1-36, got {chosen}")
    _check_out(out, force, wisdm.DATASET_DIR)
    rng = np.random.default_rng([seed, 2000, 0])
    lines: List[bytes] = []
    records = 0
    with progress_bar(length=len(chosen), label="synth wisdm", enabled=progress) as bar:
        for user in chosen:
            text, count = _user_text(seed, user, seconds_per_activity, full_size, len(chosen))
            lines.append(text)
            records += count
            bar.update(1)
    data = _flaws(b"".join(lines), rng)
    with atomic_dir(out, force) as tmp:
        folder = tmp / wisdm.DATASET_DIR
        folder.mkdir()
        (folder / wisdm.FILE_NAME).write_bytes(data)
    return {"files": 1, "rows": records, "bytes": len(data), "path": str(out),
            "seconds": round(time.perf_counter() - t0, 3)}


def _user_text(seed: int, user: int, seconds_per_activity: float, full_size: bool,
               users: int):
    """One user's records as text lines (one record per line), and their count."""
    rng = np.random.default_rng([seed, 2000, user])
    acts, seconds = [], []
    for name in wisdm.ACTIVITIES:
        total = (FULL_SIZE_RECORDS[name] / wisdm.RATE_HZ / users if full_size
                 else seconds_per_activity) * rng.uniform(0.7, 1.3)
        bouts = max(1, int(round(total / 60))) if full_size else 1
        acts += [name] * bouts
        seconds += list(total / bouts * rng.uniform(0.8, 1.2, bouts))
    order = rng.permutation(len(acts))
    acts, seconds = [acts[i] for i in order], [seconds[i] for i in order]
    rec = simulate(plan([MOTION_OF[a] for a in acts], seconds, rng, transient_s=(1, 3)),
                   Traits.draw(seed, 300 + user), rng, dropouts=False, gaps=False)
    motion = rec["activity"][::STEP]
    acc = rec["imu"][::STEP, sensor_columns("ankle", "acc16")]
    keep = motion != 0                                  # between bouts: no records (a gap)
    name_of = {m: a for a, m in MOTION_OF.items()}
    bout = np.cumsum(np.concatenate(([True], motion[1:] != motion[:-1])))
    clock = int(rng.integers(10**12, 5 * 10**13))
    stamps = np.empty(motion.size, np.int64)
    step_ns = int(1e9 / wisdm.RATE_HZ)
    for b in np.unique(bout):
        rows = np.flatnonzero(bout == b)
        if rng.random() < 0.15:                          # the phone's clock restarted
            clock = int(rng.integers(10**11, 10**12))
        # The phone's clock jitters: steps of 50 ms +- 10 ms, and one in ten twice as long.
        steps = step_ns * (1 + (rng.random(rows.size) < STEP_DOUBLED)) + rng.normal(
            0, 0.2 * step_ns, rows.size).astype(np.int64)
        stamps[rows] = clock + np.concatenate(([0], np.cumsum(steps[1:])))
        clock = int(stamps[rows[-1]]) + int(rng.uniform(2, 30) * 1e9)
    out = []
    for i in np.flatnonzero(keep):
        x, y, z = acc[i]
        out.append(b"%d,%s,%d,%s,%s,%s;\n" % (user, name_of[int(motion[i])].encode(),
                                               stamps[i], _num(x), _num(y), _num(z)))
    return b"".join(out), len(out)


def _num(v: float) -> bytes:
    return (b"%.8g" % v) if np.isfinite(v) else b""


def _flaws(data: bytes, rng: np.random.Generator) -> bytes:
    """The real file's flaws, at the rates above, on a text of one record per line."""
    lines = data.split(b"\n")[:-1]
    n = len(lines)
    out = []
    for i, line in enumerate(lines):
        r = rng.random(6)
        user, act, stamp, rest = line.split(b",", 3)
        if r[0] < ZERO_TIMESTAMP:
            stamp = b"0"
        elif r[1] < REPEATED_TIMESTAMP and out:
            stamp = out[-1].split(b",")[2] if out[-1].count(b",") >= 3 else stamp
        line = b",".join((user, act, stamp, rest))
        if r[2] < EMPTY_VALUE:
            fields = line[:-1].split(b",")
            fields[3 + int(rng.integers(3))] = b""
            line = b",".join(fields) + b";"
        if r[3] < TRAILING_COMMA:
            line = line[:-1] + b",;"
        if r[4] < CUT_SHORT and i < n - 1:
            line = line[:max(3, int(len(line) * rng.uniform(0.2, 0.6)))]
        out.append(line)
    text, i = [], 0
    while i < len(out):                                  # several records on one line
        k = 1 + int(rng.random() < MULTI_RECORD_LINES) * int(rng.integers(1, 3))
        text.append(b"".join(out[i:i + k]))
        i += k
    return b"\n".join(text) + b"\n"
