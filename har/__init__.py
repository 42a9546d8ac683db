"""harkit: human activity recognition from wearable IMU time series.

The package imports nothing heavy at start-up; ``har.train``, ``har.models`` and friends pull in
torch when they are used.
"""

from har.errors import HarError

__version__ = "0.1.0"

__all__ = ["HarError", "__version__"]
