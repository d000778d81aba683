"""Report layer: the papers' published numbers, paper-vs-ours tables, figures.

- ``paper_results.csv``: every number of every results table of the five papers (long format).
- :mod:`fsrlib.report.tables`: :func:`load_results`, the table specs, :func:`build_table`,
  :func:`write_table`, :func:`build_all` (``reports/tables/*.md|csv`` + ``README.md``).
- :mod:`fsrlib.report.figures`: figure functions (import it explicitly; it pulls in matplotlib).
"""
from .tables import (PAPER_CSV, TABLES, TABLES_BY_NAME, build_all, build_table, expected_method_keys,
                     load_paper_results, load_results, write_table)

__all__ = ["PAPER_CSV", "TABLES", "TABLES_BY_NAME", "build_all", "build_table", "expected_method_keys",
           "load_paper_results", "load_results", "write_table"]
