"""``har synth csv``: a study of your own recordings, the shape of the files users bring."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from data_prep.datasets import pamap2
from data_prep.synth.body import FS, Traits, simulate
from data_prep.synth.pamap2 import _check_args, _Job, _plan
from harkit.files import atomic_dir
from harkit.progress import progress_bar

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
            rec = simulate(_plan(job, rng), Traits.draw(seed, subject), rng)
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

