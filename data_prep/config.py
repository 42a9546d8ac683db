"""The options of ``har prepare``: defaults from ``configs/pamap2.toml``, validated once here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from data_prep import pamap2
from harkit.config import read_section
from harkit.errors import HarError


@dataclass(frozen=True)
class PrepareConfig:
    """Every choice of a preparation; stored verbatim in ``meta.json["options"]``."""

    out: str
    sensors: List[str]
    modalities: List[str]
    heart_rate: bool
    temperature: bool
    include_optional: bool
    downsample: int
    antialias: bool
    window: int
    overlap: float
    val_subjects: List[int]
    test_subjects: List[int]
    normalize: bool

    @property
    def stride(self) -> int:
        """Steps between window starts: ``int(window * (1 - overlap))``."""
        return int(self.window * (1.0 - self.overlap))

    @property
    def rate_hz(self) -> float:
        """Sample rate after downsampling (Hz)."""
        return pamap2.SAMPLE_RATE_HZ / self.downsample

    @property
    def activity_ids(self) -> List[int]:
        """Source activity IDs that become classes, ascending (label = position)."""
        ids = list(pamap2.PROTOCOL_ACTIVITIES)
        if self.include_optional:
            ids += list(pamap2.OPTIONAL_ACTIVITIES)
        return sorted(ids)

    @property
    def channels(self) -> List[str]:
        """Output channel names in order: IMU channels, then heart rate, then temperatures."""
        names = pamap2.imu_channels(self.sensors, self.modalities)
        if self.heart_rate:
            names.append("heart_rate")
        if self.temperature:
            names += [f"{s}_temperature" for s in pamap2.SENSORS if s in self.sensors]
        return names

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def load_prepare_config(path: Optional[Path] = None, overrides: Optional[Dict[str, Any]] = None,
                        ) -> PrepareConfig:
    """Read the ``[prepare]`` table (packaged default or ``path``), apply overrides, validate."""
    values = read_section("pamap2", "prepare", path)
    values.update(overrides or {})
    known = {f.name for f in fields(PrepareConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise HarError(f"--config: unknown key(s) {', '.join(unknown)} in [prepare]; "
                       f"known keys: {', '.join(sorted(known))}")
    missing = sorted(known - set(values))
    if missing:
        raise HarError(f"--config: [prepare] lacks {', '.join(missing)}; add them")
    return validate(PrepareConfig(**values))


def validate(cfg: PrepareConfig) -> PrepareConfig:
    """Check every value against its accepted range; raise HarError naming the option."""
    _check_names(cfg.sensors, pamap2.SENSORS, "--sensors")
    _check_names(cfg.modalities, pamap2.MODALITIES, "--modalities")
    _check_int(cfg.downsample, "--downsample", 1)
    _check_int(cfg.window, "--window", 2)
    if not isinstance(cfg.overlap, (int, float)) or not 0.0 <= cfg.overlap < 1.0:
        raise HarError(f"--overlap must be in [0, 1), got {cfg.overlap!r}; e.g. --overlap 0.5")
    if cfg.stride < 1:
        raise HarError(f"--overlap {cfg.overlap} leaves a stride of 0 steps for --window "
                       f"{cfg.window}; lower --overlap")
    for option, subjects in (("--val-subjects", cfg.val_subjects),
                             ("--test-subjects", cfg.test_subjects)):
        if not all(isinstance(s, int) for s in subjects):
            raise HarError(f"{option}: expected subject IDs like 105, got {subjects!r}")
        if len(set(subjects)) != len(subjects):
            raise HarError(f"{option} lists a subject twice: {subjects}")
    both = sorted(set(cfg.val_subjects) & set(cfg.test_subjects))
    if both:
        raise HarError(f"subject(s) {', '.join(map(str, both))} in both --val-subjects and "
                       "--test-subjects; a subject belongs to one split")
    for name in ("heart_rate", "temperature", "include_optional", "antialias", "normalize"):
        if not isinstance(getattr(cfg, name), bool):
            raise HarError(f"--config: {name} must be true or false, got "
                           f"{getattr(cfg, name)!r}")
    return cfg


def _check_names(values: List[str], allowed, option: str) -> None:
    if not values:
        raise HarError(f"{option} is empty; choose from {','.join(allowed)}")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise HarError(f"{option}: unknown {', '.join(map(repr, bad))}; "
                       f"choose from {','.join(allowed)}")
    if len(set(values)) != len(values):
        raise HarError(f"{option} names a value twice: {','.join(values)}")


def _check_int(value, option: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HarError(f"{option} must be an integer >= {minimum}, got {value!r}")
