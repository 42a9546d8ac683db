"""Synthetic datasets in their exact raw file formats (``har synth NAME OUT``), for the demo,
the tests and the benchmarks; there is no copy of a real dataset here.

One module per dataset, all on one body model (:mod:`data_prep.synth.body`), so that training on
them means something. Scores on synthetic data are not published scores.
"""

from data_prep.synth.mhealth import synth_mhealth
from data_prep.synth.pamap2 import synth_pamap2
from data_prep.synth.tabular import synth_csv
from data_prep.synth.uci_har import synth_uci_har
from data_prep.synth.wisdm import synth_wisdm

__all__ = ["synth_csv", "synth_mhealth", "synth_pamap2", "synth_uci_har", "synth_wisdm"]
