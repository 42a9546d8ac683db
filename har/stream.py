"""``har predict CHECKPOINT - --follow``: predictions from text rows as they arrive.

:class:`Stream` reads chunks of complete text lines (stdin, a file, a growing file:
:func:`read_chunks`), parses them with the dataset adapter's row parser (the same rules as its
whole-file parser), fills gaps and cuts windows row by row
(:class:`data_prep.transform.GapFiller`, :class:`~data_prep.transform.Windower`) and predicts each
window once its values are final: the same windows, values and predictions as the
whole-recording path of :mod:`har.predict`, one per hop, each with the time it took.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, List, Optional

import numpy as np

from data_prep.transform import GapFiller, StreamWindow, Windower, span_labels
from har.predict import Predictor, Timeline, is_labelled, no_window_note, true_name
from harkit.errors import HarError

POLL_S = 0.05      # how often a followed file is checked for new rows (s)


@dataclass
class Prediction:
    """One streamed prediction."""

    start_s: float
    end_s: float
    predicted: int          # class index
    probability: float
    true: int               # label code when all the window's rows agree, else < 0
    latency_ms: float       # from reading the rows that completed the window to the prediction


#: Column heads of :func:`format_prediction`'s lines.
PREDICTION_HEADER = f"{'start_s':>10} {'end_s':>10}  {'activity':<18} {'prob':>5} {'ms':>7}  true"


def format_prediction(p: Prediction, predictor: Predictor, label_names) -> str:
    """One streamed prediction as a line under :data:`PREDICTION_HEADER`."""
    return (f"{p.start_s:>10.2f} {p.end_s:>10.2f}  {predictor.classes[p.predicted]:<18} "
            f"{p.probability:>5.3f} {p.latency_ms:>7.1f}  "
            f"{true_name(p.true, label_names)}").rstrip()


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
        p = self.predictor
        if not p.adapter.streams:
            raise HarError(f"{p.adapter.name} recordings cannot be streamed; pass a whole "
                           "recording file without --follow")
        self.parser = p.adapter.row_parser(p.options, self.name)
        self._filler = self._windower = None
        self._rows = 0
        self._seen = np.zeros(len(p.prep.channels), bool)   # channels with a value so far
        self._labels = np.empty(0, np.int64)

    @property
    def label_names(self):
        return self.parser.label_names

    @property
    def dropped_nan(self) -> int:
        return 0 if self._windower is None else self._windower.dropped_nan

    def _start(self) -> None:
        """The filler and windower, once the parser knows its channels (after a header)."""
        p = self.predictor
        if p.resample_hz and not getattr(self.parser, "even", False):
            raise HarError(f"{p.path} was trained on data resampled to {p.resample_hz:g} Hz "
                           "(--rate); streamed rows cannot be resampled as they arrive: predict "
                           "the whole file without --follow")
        self._columns = p.prep.columns(self.parser.channels, self.name)
        hold = {c.name for c in p.adapter.all_channels() if c.fill == "hold"}
        self._filler = GapFiller(len(self._columns), p.prep.rate_hz,
                                 [i for i, c in enumerate(p.prep.channels) if c in hold])
        self._windower = Windower(p.prep, p.hop, p.by_label)

    def __iter__(self) -> Iterator[Prediction]:
        for chunk in self.chunks:
            t0 = time.perf_counter()
            ts, labels, signals = self.parser.parse(chunk)
            if self._filler is None:
                self._start()
            if not self.labelled and labels.size:
                self._labels = np.union1d(self._labels, labels)
                self.labelled = is_labelled(self._labels, self.parser.label_names,
                                            self.predictor.adapter.excluded)
            values = signals[:, self._columns]
            self._rows += ts.size
            self._seen |= ~np.isnan(values).all(axis=0)
            for rows in self._filler.push(ts, labels, values):
                yield from self._predict(self._windower.push(rows), t0)
        if self._filler is None:
            return
        t0 = time.perf_counter()
        for rows in self._filler.close():
            yield from self._predict(self._windower.push(rows), t0)
        yield from self._predict(self._windower.close(), t0)

    def _predict(self, released: List[StreamWindow], t0: float) -> Iterator[Prediction]:
        step_s = self.predictor.prep.downsample / self.predictor.prep.rate_hz
        for w in released:
            probs = self.predictor.probabilities(w.x[None])[0]
            k = int(probs.argmax())
            true = span_labels(w.labels, np.array([0]), np.array([w.labels.size - 1]))
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
            note = no_window_note(self.name, prep, 0, 0, False, blank,
                                  getattr(self.parser, "channels", ()))
        elif not p:
            note = (f"{self.name}: no complete window arrived (the model needs {prep.window} "
                    f"steps at {prep.step_rate_hz:.1f} Hz of gap-free rows)")
        return Timeline(self.name, np.array([x.start_s for x in p], np.float64),
                        np.array([x.end_s for x in p], np.float64),
                        np.array([x.predicted for x in p], np.int64),
                        np.array([x.probability for x in p], np.float32),
                        np.array([x.true for x in p], np.int64),
                        tuple(self.parser.label_names), self.labelled, self.dropped_nan, note)


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
            raise HarError(f"cannot read {path} ({exc.strerror}); pass a recording "
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
