"""``har predict CHECKPOINT - --follow``: predictions from PAMAP2 rows as they arrive.

:class:`Stream` reads chunks of complete text lines (stdin, a file, a growing file:
:func:`read_chunks`), parses them (:func:`parse_rows`), fills gaps and cuts windows row by row
(:class:`data_prep.transform.GapFiller`, :class:`~data_prep.transform.Windower`) and predicts each
window once its values are final: the same windows, values and predictions as the
whole-recording path of :mod:`har.predict`, one per hop, each with the time it took.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from data_prep import pamap2
from data_prep.transform import GapFiller, StreamWindow, Windower, span_labels
from har.predict import Predictor, Timeline, no_window_note, true_name
from harkit.errors import HarError

POLL_S = 0.05      # how often a followed file is checked for new rows (s)


@dataclass
class Prediction:
    """One streamed prediction."""

    start_s: float
    end_s: float
    predicted: int          # class index
    probability: float
    true_id: int            # activity ID when all the window's rows agree, else -1
    latency_ms: float       # from reading the rows that completed the window to the prediction


#: Column heads of :func:`format_prediction`'s lines.
PREDICTION_HEADER = f"{'start_s':>10} {'end_s':>10}  {'activity':<18} {'prob':>5} {'ms':>7}  true"


def format_prediction(p: Prediction, predictor: Predictor) -> str:
    """One streamed prediction as a line under :data:`PREDICTION_HEADER`."""
    return (f"{p.start_s:>10.2f} {p.end_s:>10.2f}  {predictor.classes[p.predicted]:<18} "
            f"{p.probability:>5.3f} {p.latency_ms:>7.1f}  {true_name(p.true_id)}").rstrip()


@dataclass
class Stream:
    """Rows in (chunks of complete text lines), predictions out, one per hop; iterate it.

    ``labelled``, ``dropped_nan`` and ``predictions`` grow as it runs; :meth:`timeline` turns
    what arrived into a :class:`Timeline`."""

    predictor: Predictor
    chunks: Iterable[bytes]
    name: str = "stdin"
    labelled: bool = False
    predictions: List[Prediction] = field(default_factory=list)

    def __post_init__(self) -> None:
        prep = self.predictor.prep
        self._columns = prep.columns
        self._filler = GapFiller(len(prep.channels), prep.hold)
        self._windower = Windower(prep, self.predictor.hop, self.predictor.by_label)
        self._rows = 0
        self._seen = np.zeros(len(prep.channels), bool)   # channels with a value so far

    @property
    def dropped_nan(self) -> int:
        return self._windower.dropped_nan

    def __iter__(self) -> Iterator[Prediction]:
        line = 1
        for chunk in self.chunks:
            t0 = time.perf_counter()
            ts, act, signals = parse_rows(chunk, self.name, line)
            line += chunk.count(b"\n")
            self.labelled |= bool(np.any(act != pamap2.TRANSIENT_ID))
            values = signals[:, self._columns]
            self._rows += ts.size
            self._seen |= ~np.isnan(values).all(axis=0)
            for rows in self._filler.push(ts, act, values):
                yield from self._predict(self._windower.push(rows), t0)
        t0 = time.perf_counter()
        for rows in self._filler.close():
            yield from self._predict(self._windower.push(rows), t0)
        yield from self._predict(self._windower.close(), t0)

    def _predict(self, released: List[StreamWindow], t0: float) -> Iterator[Prediction]:
        step_s = self.predictor.prep.downsample / pamap2.SAMPLE_RATE_HZ
        for w in released:
            probs = self.predictor.probabilities(w.x[None])[0]
            k = int(probs.argmax())
            true = span_labels(w.activity, np.array([0]), np.array([w.activity.size - 1]))
            p = Prediction(float(w.timestamp_s[0]), float(w.timestamp_s[1]) + step_s, k,
                           float(probs[k]), int(true[0]), (time.perf_counter() - t0) * 1e3)
            self.predictions.append(p)
            yield p

    def timeline(self) -> Timeline:
        """The predictions so far as a :class:`Timeline`."""
        p, prep = self.predictions, self.predictor.prep
        blank = [c for c, seen in zip(prep.channels, self._seen) if not seen]
        note = ""
        if not p and self._rows and blank:
            note = no_window_note(self.name, prep, 0, 0, False, blank)
        elif not p:
            note = (f"{self.name}: no complete window arrived (the model needs {prep.window} "
                    f"steps at {prep.rate_hz:.1f} Hz of gap-free rows)")
        return Timeline(self.name, np.array([x.start_s for x in p], np.float64),
                        np.array([x.end_s for x in p], np.float64),
                        np.array([x.predicted for x in p], np.int64),
                        np.array([x.probability for x in p], np.float32),
                        np.array([x.true_id for x in p], np.int64), self.labelled,
                        self.dropped_nan, note)


def parse_rows(data: bytes, name: str, first_line: int = 1
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complete PAMAP2 text lines → ``(timestamp float64 [k], activity int16 [k], signals
    float32 [k, 40])``, NaN left in place; HarError names the bad line, counting from
    ``first_line``. Blank lines are skipped, as by :func:`data_prep.read.parse_bytes`.

    Numbers are read as float64, then rounded to float32: the value pyarrow's direct float32
    parse (``parse_bytes``) gives whenever a number has at most 8 digits after the decimal
    point (PAMAP2 has at most 7), since no float64 rounding can then cross a float32 midpoint.
    numpy is used rather than pyarrow because it costs ~0.1 ms instead of ~1 ms per few lines."""
    rows = [tokens for tokens in (line.split() for line in data.split(b"\n")) if tokens]
    if any(len(tokens) != pamap2.NUM_COLUMNS for tokens in rows):
        raise pamap2.row_error(data, name, first_line)
    try:
        values = np.array([t for tokens in rows for t in tokens], dtype=np.float64)
    except ValueError:
        raise pamap2.row_error(data, name, first_line) from None
    values = values.reshape(-1, pamap2.NUM_COLUMNS)
    ts, act = values[:, 0], values[:, 1]
    bad = pamap2.first_bad_row(ts, act)
    if bad is not None:
        raise pamap2.row_error(data, name, first_line, row=bad)
    return (ts.copy(), act.astype(np.int16),
            values[:, _SIGNAL_INDEX].astype(np.float32))


_SIGNAL_INDEX = [pamap2.COLUMN_INDEX[c] for c in pamap2.SIGNAL_COLUMNS]


def read_chunks(path: Optional[Path] = None, follow: bool = False,
                idle_timeout: Optional[float] = None, poll_s: float = POLL_S) -> Iterator[bytes]:
    """Complete lines as they arrive, in chunks: from stdin until end of input (``path`` None),
    from a file until its end, or with ``follow`` from a growing file until it has not grown for
    ``idle_timeout`` seconds (None: until Ctrl-C). A last line without a newline is yielded at
    the end."""
    if path is None:
        fh, close = sys.stdin.buffer, False
    else:
        try:
            fh, close = open(path, "rb"), True
        except OSError as exc:
            raise HarError(f"cannot read {path} ({exc.strerror}); pass a PAMAP2-format .dat "
                           "file") from None
    tail = b""
    last_data = time.monotonic()
    try:
        while True:
            data = fh.read1(1 << 16)
            if data:
                last_data = time.monotonic()
                data = tail + data
                end = data.rfind(b"\n") + 1
                tail = data[end:]
                if end:
                    yield data[:end]
                continue
            if path is None or not follow:
                break
            if idle_timeout is not None and time.monotonic() - last_data >= idle_timeout:
                break
            time.sleep(poll_s)
    finally:
        if close:
            fh.close()
    if tail.strip():
        yield tail
