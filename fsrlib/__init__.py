"""fsrlib: face super-resolution methods, data pipeline, metrics and reports under one protocol."""
__version__ = "0.1.0"
