"""Report layer: the papers' published numbers, paper-vs-ours tables, figures, the README.

- ``paper_results.csv``: every number of every results table of the five papers (long format).
- :mod:`fsrlib.report.vocabulary`: labels, decimals, paper data set -> our test set.
- :mod:`fsrlib.report.specs`: the results tables of the papers as data (``TABLES``).
- :mod:`fsrlib.report.results`: ``load_paper_results``, ``load_results`` (ours), the strict
  readers of results files.
- :mod:`fsrlib.report.tables`: ``build_table``, ``write_table``, ``build_all``
  (``reports/tables/*.md|csv`` + their index).
- :mod:`fsrlib.report.figures`: figure functions (matplotlib).
- :mod:`fsrlib.report.readme`: ``reports/README.md`` from what the report stage made.

The report stage itself (which runs these over the pipeline's outputs) is
:mod:`fsrlib.pipeline.report_stage`. This package imports none of its modules, so importing
one (the train notebook's curves: ``report.figures``) costs only that one, and a stage's code
deps (:mod:`fsrlib.deps`) list only what it uses.
"""
