"""The body model behind every synthetic dataset: activities as movements of three body
segments, read by simulated IMUs.

Each sensor's orientation is its body segment's posture (per activity, blended during
transients) times a periodic swing and a slow wander, under a heading that drifts and turns. The
accelerometers read gravity plus the activity's periodic linear acceleration in the sensor
frame, the gyroscope the angular velocity of that orientation, the magnetometer the earth field
rotated likewise; heart rate follows each activity's effort with a lag. Subjects differ in
cadence, amplitudes, postures and sensor mounting (:class:`Traits`). :func:`simulate` turns a
plan of ``(activity, rows)`` segments at :data:`FS` into the rows of one recording: PAMAP2's
hand, chest and ankle IMUs (PAMAP2's column layout), which the dataset writers of this package
pick from and convert to their datasets' sensors, units and rates. Activity keys are PAMAP2's
activity IDs, plus :data:`EXTRA_ACTIVITIES` for other datasets' movements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from data_prep.datasets import pamap2

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
    # Movements of other datasets (MHEALTH), under keys beyond PAMAP2's activity IDs
    101: Motion(0.3, 95, fidget=0.05, turn=0.0, irregular=0.2,                 # waist bends
                hand=P((0, 10, 0), 1.0, (1.0, 0.3, 1.5), (0.05, 0.90, 0.05)),
                chest=P((0, 20, 0), 1.0, (1.2, 0.2, 1.2), (0.03, 0.70, 0.04)),
                ankle=P((0, 0, 0), 1.0, (0.2, 0.1, 0.2), (0.01, 0.05, 0.01))),
    102: Motion(0.4, 90, fidget=0.04, turn=0.0, irregular=0.2,                 # arms up
                hand=P((0, -40, 0), 1.0, (2.0, 0.5, 2.5), (0.05, 1.30, 0.10)),
                chest=P((0, 3, 0), 1.0, (0.3, 0.2, 0.3), (0.02, 0.05, 0.02))),
    103: Motion(0.5, 105, fidget=0.05, turn=0.0, irregular=0.2,                # crouching
                hand=P((0, 15, 0), 1.0, (1.0, 0.3, 2.5), (0.05, 0.30, 0.05)),
                chest=P((0, 15, 0), 1.0, (0.8, 0.3, 3.0), (0.03, 0.25, 0.03)),
                ankle=P((0, 20, 0), 1.0, (0.8, 0.2, 1.5), (0.02, 0.60, 0.02))),
    104: Motion(1.1, 150, fidget=0.06, turn=0.05, irregular=0.3,               # jumps f&b
                hand=P((0, -30, 0), 1.0, (4.0, 1.0, 6.0), (0.10, 0.40, 0.10), contact=0.5),
                chest=P((0, 10, 0), 1.0, (5.0, 0.8, 7.0), (0.05, 0.20, 0.04), contact=0.5),
                ankle=P((0, 10, 0), 1.0, (6.0, 1.0, 9.0), (0.05, 0.50, 0.05), contact=0.45)),
    105: Motion(2.4, 145, fidget=0.06, turn=0.2,                               # jogging
              hand=P((0, -45, 0), 0.5, (4.5, 1.5, 3.5), (0.08, 0.50, 0.12)),
              chest=P((0, 8, 0), 1.0, (1.8, 1.2, 5.0), (0.04, 0.05, 0.07), contact=0.6),
              ankle=P((0, 0, 0), 0.5, (13.0, 3.0, 10.0), (0.08, 0.85, 0.09), contact=0.4)),
}
#: Activities other datasets have and PAMAP2 lacks: their MOTIONS keys.
EXTRA_ACTIVITIES: Dict[int, str] = {101: "waist bends forward", 102: "frontal elevation of arms",
                                    103: "knees bending (crouching)", 104: "jump front & back",
                                    105: "jogging"}
assert set(MOTIONS) == set(pamap2.ACTIVITIES) | set(EXTRA_ACTIVITIES)


# --------------------------------------------------------------------------- subject traits
@dataclass
class Traits:
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
    def draw(cls, seed: int, subject: int) -> "Traits":
        rng = np.random.default_rng([seed, subject, 0])
        t = cls()
        base_cadence = float(np.clip(rng.normal(1.0, 0.05), 0.9, 1.1))
        base_gain = {s: float(rng.lognormal(0.0, 0.15)) for s in pamap2.SENSORS}
        t._draw_activities(rng, sorted(pamap2.ACTIVITIES), base_cadence, base_gain)
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
        # drawn last, so that adding movements leaves the PAMAP2 subjects as they were
        t._draw_activities(rng, sorted(EXTRA_ACTIVITIES), base_cadence, base_gain)
        return t

    def _draw_activities(self, rng, acts, base_cadence: float, base_gain) -> None:
        for a in acts:
            self.cadence[a] = base_cadence * float(rng.normal(1.0, 0.03))
            for s in pamap2.SENSORS:
                self.gain[a, s] = base_gain[s] * float(rng.lognormal(0.0, 0.1))
                jitter = Rotation.from_rotvec(rng.normal(0.0, math.radians(6), 3))
                self.posture[a, s] = _euler(getattr(MOTIONS[a], s).posture_deg) * jitter


# --------------------------------------------------------------------------- simulation
def simulate(plan: List[Tuple[int, int]], traits: Traits, rng: np.random.Generator,
             dropouts: bool = True, gaps: bool = True) -> dict:
    """Rows of one recording at :data:`FS`: ``timestamp`` [n] s, ``activity`` [n], ``heart_rate``
    [n] bpm (NaN between readings), ``imu`` [n, 51] float32 in PAMAP2's column order (NaN in
    wireless ``dropouts``); with ``gaps`` a few seconds go missing inside some activities."""
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
    if dropouts:
        _dropouts(rng, imu)
    start_cs = np.round(rng.uniform(5.0, 10.0) * 100)                   # centiseconds
    timestamp = (start_cs + np.arange(n)) / 100
    keep = _gaps(rng, acts, lengths) if gaps else np.ones(n, bool)
    return {"timestamp": timestamp[keep],
            "activity": np.repeat(np.array(acts, dtype=np.int16), lengths)[keep],
            "heart_rate": _heart_rate(rng, lengths, motions, traits)[keep],
            "imu": imu[keep]}


def _imu_block(rng, sensor: str, posture: Rotation, alpha, lin, heading, intensity,
               traits: Traits) -> np.ndarray:
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


def _periodic(rng, acts: List[int], lengths: np.ndarray, traits: Traits):
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


def _postures(sensor: str, acts: List[int], lengths: np.ndarray, traits: Traits) -> Rotation:
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


def _heart_rate(rng, lengths, motions: List[Motion], traits: Traits) -> np.ndarray:
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


def _temperature(rng, sensor: str, intensity: np.ndarray, traits: Traits) -> np.ndarray:
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




def plan(acts, seconds, rng: np.random.Generator, transient_s=(2.0, 6.0)
         ) -> List[Tuple[int, int]]:
    """``[(activity, rows), ...]`` at :data:`FS`: transient (0), ``acts[0]`` for
    ``seconds[0]`` s, transient, ..., transient; transients last ``transient_s`` s (uniform)."""
    out = [(0, max(MIN_SEGMENT_ROWS, int(rng.uniform(*transient_s) * FS)))]
    for a, s in zip(acts, seconds):
        out += [(int(a), max(MIN_SEGMENT_ROWS, int(round(s * FS)))),
                (0, max(MIN_SEGMENT_ROWS, int(rng.uniform(*transient_s) * FS)))]
    return out


def sensor_columns(sensor: str, field: str) -> slice:
    """Columns of ``simulate()["imu"]`` holding one sensor's field (``acc16``, ``gyro``, ...)."""
    width = (pamap2.NUM_COLUMNS - 3) // len(pamap2.SENSORS)
    start = pamap2.SENSORS.index(sensor) * width
    offset = 0
    for name, size in pamap2.IMU_FIELDS:
        if name == field:
            return slice(start + offset, start + offset + size)
        offset += size
    raise KeyError(field)
