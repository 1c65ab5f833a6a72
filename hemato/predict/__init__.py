"""One scan in, a volume report out: read -> check -> segment -> measure -> write.

- :mod:`~hemato.predict.pipeline`: :func:`predict`, the one path every caller takes;
- :mod:`~hemato.predict.check`, :mod:`~hemato.predict.measure`, :mod:`~hemato.predict.write`:
  its stages (reading is :mod:`hemato.data.readers.scan`, segmenting :mod:`hemato.engine`);
- :mod:`~hemato.predict.cohort`: a folder of scans; :mod:`~hemato.predict.page`: report.html;
- :mod:`~hemato.predict.cli`: ``python -m hemato.predict`` (its usage is there).
Models load through :mod:`hemato.weights.load`.
"""

from hemato.predict.cli import main
from hemato.predict.cohort import predict_cohort, scans_in
from hemato.predict.pipeline import predict

__all__ = ["main", "predict", "predict_cohort", "scans_in"]
