"""What a dataset adapter declares and yields: the interface every module of
``data_prep/datasets/`` implements, and the options shared by the adapters of one kind.

An adapter is a :class:`Dataset` subclass registered by name (:func:`data_prep.datasets.register`).
It declares how to recognise its files (:meth:`Dataset.detect`), its channels (name, sensor,
modality, unit), its native rate, its classes (and which labels are excluded, e.g. PAMAP2's
transient), where subjects come from, and its prepare options (a dataclass whose defaults are
``configs/<name>.toml``'s ``[prepare]`` table). It yields either

* **recordings** (``kind = "recordings"``): :class:`Recording` -- a subject's rows in time order,
  timestamps (s), signals ``[n, C]`` float32 with NaN for missing values, a label per row; the
  shared pipeline (:mod:`data_prep.prepare`) fills gaps, resamples, cuts runs and windows; or
* **pre-cut windows** (``kind = "windows"``): :class:`WindowSet` per split, for archives that
  ship windows (UEA ``.ts``).

Everything after that is shared by all datasets. An adapter imports nothing from ``har``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from harkit.errors import HarError

Subject = Union[int, str]


@dataclass(frozen=True)
class Channel:
    """One signal channel: ``name`` (as in meta.json), ``sensor`` (where it is worn or which
    device), ``modality`` (acc, gyro, mag, ecg, ...), ``unit`` (m/s^2, rad/s, uT, g, ...), and how
    its missing values are filled (``"linear"`` interpolation or ``"hold"`` of the last reading)."""

    name: str
    sensor: str = ""
    modality: str = ""
    unit: str = ""
    fill: str = "linear"


@dataclass(frozen=True)
class ClassSpec:
    """A class: its ``name`` (the label as the data writes it, or its readable name) and the
    dataset's own ``id`` for it (PAMAP2's activityID), when it has one."""

    name: str
    id: Optional[Union[int, str]] = None


@dataclass
class Recording:
    """One recording as an adapter yields it: rows in time order.

    ``labels`` index ``label_names`` (-1: the row has no label); the pipeline maps names to
    classes. ``filled`` says the missing values were already filled (a parse cache holds filled
    signals). ``release()`` hands pooled memory back once the caller is done with the arrays.
    """

    name: str                          # shown in messages and meta.json: file [+ recording]
    subject: Subject
    timestamp_s: np.ndarray            # float64 [n], seconds
    signals: np.ndarray                # float32 [n, C], channels in ``channels`` order
    channels: Tuple[str, ...]
    labels: np.ndarray                 # int64 [n], index into label_names, -1 = no label
    label_names: Tuple[str, ...]
    rate_hz: float                     # nominal rate of the rows (Hz)
    hold: Tuple[str, ...] = ()         # channels filled by holding the last reading
    even: bool = False                 # rows known to lie on an even grid at rate_hz
    filled: bool = False
    sha256: str = ""                   # of the source file's bytes
    size: int = 0                      # of the source file (bytes)
    extra: Dict[str, Any] = field(default_factory=dict)   # adapter notes for meta.json sources
    #: raw records of the source left out while parsing, by cause (summed over all sources
    #: into meta.json ``dropped.records_skipped``)
    dropped: Dict[str, int] = field(default_factory=dict)
    on_release: Optional[Callable[[np.ndarray], None]] = None

    @property
    def rows(self) -> int:
        return int(self.timestamp_s.shape[0])

    def release(self) -> None:
        """Hand the arrays back to the memory they were taken from (``on_release``); the
        recording is empty after."""
        if self.on_release is not None:
            for array in (self.signals, self.timestamp_s, self.labels):
                if array is not None:
                    self.on_release(array)
            self.timestamp_s, self.labels = self.timestamp_s[:0], self.labels[:0]
        self.on_release = None
        self.signals = None


@dataclass(frozen=True)
class Archive:
    """Where a dataset's official archive is (``har download NAME``) and how its folder is
    found inside: the folder named ``dataset_dir``, else the one holding the ``marker`` files
    (one level up when they sit in one of ``subdirs``; loose ones are moved into
    ``subdirs[0]`` of a new ``dataset_dir``)."""

    url: str
    dataset_dir: str            # DEST/<dataset_dir> is what the download leaves
    marker: str                 # glob of the files that make the dataset ("subject*.dat")
    file_name: str              # the archive's name when the URL's last part is not a file name
    what: str                   # for messages: "subject*.dat files"
    subdirs: Tuple[str, ...] = ()


@dataclass
class WindowSet:
    """Pre-cut windows of one split: ``x [N, T, C]`` float32, ``y [N]`` class indices,
    ``subject [N]`` (the case index where the archive has no subjects)."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray


@dataclass
class Windows:
    """What a windows-type adapter returns: splits, classes, channels, rate and notes."""

    splits: Dict[str, WindowSet]
    classes: List[ClassSpec]
    channels: List[Channel]
    rate_hz: Optional[float]
    subjects_are: str                  # "subjects" or "cases"
    sources: List[Dict[str, Any]]
    dropped: Dict[str, Any]
    extra_meta: Dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- options
def option(help: str, **checks: Any):
    """A prepare-option field without a default (the dataset's TOML holds it); ``help`` is the
    ``har prepare`` option's help text, ``checks`` its accepted range (``minimum``, ``choices``,
    ``flag``: the CLI spells a bool as ``--x/--no-x``)."""
    return field(metadata={"help": help, **checks})


@dataclass(frozen=True)
class PrepareOptions:
    """Options every adapter has (``dataset`` is set by the loader, not by the TOML)."""

    dataset: str = option("The adapter reading the data.", cli=False)
    out: str = option("Prepared folder to write.")
    normalize: bool = option("z-score each channel with train-subject statistics.")

    @classmethod
    def names(cls) -> List[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "PrepareOptions":
        """Types and ranges of every field (HarError naming the option); subclasses add rules."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), hints[f.name], f.metadata)
        return self


@dataclass(frozen=True)
class RecordingOptions(PrepareOptions):
    """Options every recordings adapter has: windowing, rate, subject splits."""

    window: int = option("Window length in steps.", minimum=2)
    overlap: float = option("Window overlap in [0, 1); stride = int(window * (1 - overlap)).")
    downsample: int = option("Keep every Nth step (after --rate).", minimum=1)
    antialias: bool = option("Low-pass (harkit's FIR, docs/FORMAT.md) before --downsample.")
    rate: float = option("Resample each gap-free stretch to this rate (Hz), linearly; 0 = the "
                         "data's own rate.")
    val_subjects: List[Subject] = option("Comma-separated subjects or 'none'.")
    test_subjects: List[Subject] = option("Comma-separated subjects or 'none'.")

    @property
    def stride(self) -> int:
        """Steps between window starts: ``int(window * (1 - overlap))``."""
        return int(self.window * (1.0 - self.overlap))

    def validate(self) -> "RecordingOptions":
        super().validate()
        if not 0.0 <= self.overlap < 1.0:
            raise HarError(f"--overlap must be in [0, 1), got {self.overlap!r}; e.g. --overlap "
                           "0.5")
        if self.stride < 1:
            raise HarError(f"--overlap {self.overlap} leaves a stride of 0 steps for --window "
                           f"{self.window}; lower --overlap")
        if self.rate < 0 or self.rate != self.rate:
            raise HarError(f"--rate must be a rate in Hz > 0, or 0 for the data's own rate; got "
                           f"{self.rate!r}")
        for opt, subjects in (("--val-subjects", self.val_subjects),
                              ("--test-subjects", self.test_subjects)):
            if len({str(s) for s in subjects}) != len(subjects):
                raise HarError(f"{opt} lists a subject twice: {subjects}")
        both = sorted({str(s) for s in self.val_subjects} & {str(s) for s in self.test_subjects})
        if both:
            raise HarError(f"subject(s) {', '.join(both)} in both --val-subjects and "
                           "--test-subjects; a subject belongs to one split")
        return self


def _check_type(name: str, value: Any, hint: Any, meta) -> None:
    opt = f"--{name.replace('_', '-')}"
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise HarError(f"{opt} (config key {name}) must be true or false, got {value!r}")
    elif hint is int:
        low = meta.get("minimum", 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise HarError(f"{opt} must be an integer >= {low}, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HarError(f"{opt} must be a number, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            raise HarError(f"{opt} (config key {name}) must be text, got {value!r}")
        if "choices" in meta and value not in meta["choices"]:
            raise HarError(f"{opt} {value!r} is invalid; choose one of "
                           f"{', '.join(meta['choices'])}")
    elif origin in (list, List):
        if not isinstance(value, list):
            raise HarError(f"{opt} (config key {name}) must be a list, got {value!r}")
    elif hint == Optional[str]:
        if value is not None and not isinstance(value, str):
            raise HarError(f"{opt} (config key {name}) must be text, got {value!r}")


# --------------------------------------------------------------------------- the adapter
class Dataset:
    """Base class of an adapter; subclasses set the class attributes and override the methods
    of their kind. One instance per registered name."""

    name: ClassVar[str]                     # registry key: ``har prepare --dataset NAME``
    title: ClassVar[str]                    # one line for ``har datasets``
    kind: ClassVar[str] = "recordings"      # or "windows"
    layout: ClassVar[str]                   # the layout it expects, for messages and docs
    rate_hz: ClassVar[Optional[float]] = None   # native rate; None when the data says
    subjects_from: ClassVar[str] = ""       # where subjects come from, for ``har datasets``
    options: ClassVar[type] = RecordingOptions
    #: Label names whose rows are dropped without being counted as "other" (PAMAP2 transient).
    excluded: ClassVar[Tuple[str, ...]] = ()
    #: Whether parsed recordings may be kept in the parse cache (keyed by content and options).
    cacheable: ClassVar[bool] = False
    #: Whether ``rows()`` exists: line-based text that ``har predict --follow`` can stream.
    streams: ClassVar[bool] = False
    #: The official archive, for ``har download``; None when there is none to fetch.
    archive: ClassVar[Optional[Archive]] = None

    def detect(self, path: Path) -> bool:
        """True when ``path`` (file or folder) holds this dataset's files."""
        raise NotImplementedError

    def channels(self, opts) -> List[Channel]:
        """The channels chosen by ``opts``, in model-input order."""
        raise NotImplementedError

    def all_channels(self) -> List[Channel]:
        """Every channel a recording of this dataset holds (what a parse yields)."""
        raise NotImplementedError

    def classes(self, opts) -> Optional[List[ClassSpec]]:
        """The classes in label order, or None when they come from the data (``csv``)."""
        raise NotImplementedError

    def validate(self, opts) -> None:
        """Adapter-specific option checks beyond types and ranges (HarError naming the option)."""

    def resolve(self, path: Path, opts):
        """``opts`` with the choices it leaves to the data made explicit (e.g. which columns
        are the channels), so meta.json records them and every file is read the same way."""
        return opts

    # ---- recordings
    def sources(self, path: Path, opts) -> List["Source"]:   # noqa: F821
        """The files to read under ``path`` for ``har prepare``, in a stable order."""
        raise NotImplementedError

    def recording_sources(self, path: Path) -> List["Source"]:   # noqa: F821
        """The files ``har predict`` reads at ``path`` (a file or a folder)."""
        raise NotImplementedError

    def parse(self, data, source, opts, buffers=None, for_prepare: bool = True
              ) -> List[Recording]:
        """The recordings in one file's bytes (a file may hold several), missing values as
        NaN; HarError names the file and line of bad input. ``buffers`` (a
        :class:`data_prep.read.SignalBuffers`) may supply pooled memory for ``signals``.
        ``for_prepare`` False: ``har predict``, where labels and subjects may be absent."""
        raise NotImplementedError

    def subject_of(self, source, parsed_subject: Subject) -> Subject:
        """The subject of a recording parsed (or cached) from ``source``: what the parse said,
        unless the adapter derives it from the file's path."""
        return parsed_subject

    def cache_key(self, opts) -> str:
        """What besides the file's bytes the parse depends on (part of the cache key)."""
        return ""

    # ---- streaming (line-based text)
    def row_parser(self, opts, name: str) -> "RowParser":
        """A streaming parser of this dataset's text lines, for ``har predict --follow``."""
        raise HarError(f"{self.name} data cannot be streamed; pass a whole recording file")

    # ---- pre-cut windows
    def windows(self, path: Path, opts, progress: bool = False) -> Windows:
        raise NotImplementedError


class RowParser:
    """Streaming parse of line-based text: ``parse(chunk_of_complete_lines)`` ->
    ``(timestamp_s [k], labels [k] (codes into ``label_names``, which may grow), signals
    float32 [k, C] in ``channels`` order)``; HarError names the line."""

    channels: Tuple[str, ...]
    label_names: List[str]
    rate_hz: float

    def parse(self, data: bytes) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError


def to_numpy(chunked, out: Optional[np.ndarray] = None) -> np.ndarray:
    """A pyarrow ChunkedArray of numbers as one numpy array (copied into ``out`` when given),
    chunk by chunk, nulls as NaN (integers with nulls become float64). Without ``out`` the
    result may be a read-only view of arrow memory. pyarrow's own ``ChunkedArray.to_numpy`` is
    ~100x slower on the many-chunk columns its multi-threaded CSV reader makes, and any
    copying conversion imports pandas (0.2 s); this does neither."""
    parts = [array_to_numpy(c) for c in chunked.chunks]
    if out is None:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.empty(0, np.float64)
        return np.concatenate(parts)
    pos = 0
    for values in parts:
        out[pos:pos + values.size] = values
        pos += values.size
    return out


def columns_into(columns, out: np.ndarray) -> np.ndarray:
    """pyarrow ChunkedArrays of numbers copied into the columns of ``out`` ``[n, k]`` (nulls as
    NaN); returns ``out``.

    A row-major ``out`` is filled one chunk of rows at a time (arrow's CSV reader cuts every
    column at the same rows), each block of rows staying in the core's cache while its ``k``
    columns are written, instead of ``k`` strided passes over the whole array: ~1.7x faster
    for 6 columns. Other layouts, or columns chunked differently, are copied column by
    column."""
    chunks = [col.chunks for col in columns]
    lengths = [len(c) for c in chunks[0]]
    if out.flags.f_contiguous or any([len(c) for c in ch] != lengths for ch in chunks[1:]):
        for j, col in enumerate(columns):
            to_numpy(col, out[:, j])
        return out
    pos = 0
    for i, rows in enumerate(lengths):
        block = out[pos:pos + rows]
        for j, ch in enumerate(chunks):
            block[:, j] = array_to_numpy(ch[i])
        pos += rows
    return out


def as_type(chunked, arrow_type):
    """``chunked`` cast to ``arrow_type``, untouched (and ``pyarrow.compute`` not imported)
    when it already is one."""
    return chunked if chunked.type == arrow_type else chunked.cast(arrow_type)


def array_to_numpy(chunk) -> np.ndarray:
    """One arrow Array of numbers as numpy, read from its buffers: the values (a read-only
    view when there are no nulls), NaN where the validity bitmap is clear. pyarrow's own
    ``to_numpy`` imports pandas (0.2 s) even for a zero-copy view, and filling nulls with
    ``pyarrow.compute`` costs 0.3 s to import. Other types go through ``to_numpy``."""
    import pyarrow as pa

    if not (pa.types.is_integer(chunk.type) or pa.types.is_floating(chunk.type)):
        return chunk.to_numpy(zero_copy_only=False)
    validity, data = chunk.buffers()[:2]
    start, n = chunk.offset, len(chunk)
    values = np.frombuffer(data, chunk.type.to_pandas_dtype())[start:start + n]
    if not chunk.null_count:
        return values
    valid = np.unpackbits(np.frombuffer(validity, np.uint8), count=start + n,
                          bitorder="little")[start:].astype(bool)
    out = values.astype(values.dtype if values.dtype.kind == "f" else np.float64)
    out[~valid] = np.nan
    return out


def is_number(text: str) -> bool:
    """Whether ``float(text)`` reads ``text``."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def label_codes(names: Sequence[str], vocabulary: List[str]) -> np.ndarray:
    """Codes of ``names`` in ``vocabulary``, appending names it lacks (int64 ``[len(names)]``)."""
    index = {n: i for i, n in enumerate(vocabulary)}
    out = np.empty(len(names), np.int64)
    for i, name in enumerate(names):
        code = index.get(name)
        if code is None:
            code = index[name] = len(vocabulary)
            vocabulary.append(name)
        out[i] = code
    return out
