"""Report layer: the papers' published numbers, paper-vs-ours tables, figures, the README.

- ``paper_results.csv``: every number of every results table of the five papers (long format).
- :mod:`fsrlib.report.vocabulary`: labels, decimals, paper data set -> our test set.
- :mod:`fsrlib.report.specs`: the results tables of the papers as data (:data:`TABLES`).
- :mod:`fsrlib.report.results`: :func:`load_paper_results`, :func:`load_results` (ours), the
  strict readers of results files.
- :mod:`fsrlib.report.tables`: :func:`build_table`, :func:`write_table`, :func:`build_all`
  (``reports/tables/*.md|csv`` + their index).
- :mod:`fsrlib.report.figures`: figure functions (import it explicitly; it pulls in matplotlib).
- :mod:`fsrlib.report.readme`: ``reports/README.md`` from what the report stage made.
The report stage itself (which runs these over the pipeline's outputs) is
:mod:`fsrlib.pipeline.report_stage`.
"""
from .results import PAPER_CSV, load_paper_results, load_results
from .specs import TABLES, TABLES_BY_NAME
from .tables import build_all, build_table, expected_method_keys, write_table

__all__ = ["PAPER_CSV", "TABLES", "TABLES_BY_NAME", "build_all", "build_table", "expected_method_keys",
           "load_paper_results", "load_results", "write_table"]
