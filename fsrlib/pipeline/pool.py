"""Worker pools of the data stages (prepare, degrade): one job list, serial below a few jobs."""
from __future__ import annotations

import multiprocessing as mp
from typing import Callable, Sequence

from tqdm import tqdm

__all__ = ["mp_context", "run_jobs"]


def mp_context():
    """``fork`` where the OS has it (no re-import of ``__main__``, so scripts without a
    ``__main__`` guard and notebooks both work), else ``spawn``."""
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def run_jobs(fn: Callable, jobs: Sequence, workers: int, progress: bool, desc: str, initializer: Callable | None = None,
             initargs: tuple = (), chunksize: int = 8, min_jobs: int = 16) -> list:
    """``[fn(job) for job in jobs]`` in order: in this process when ``workers <= 1`` or there are
    fewer than ``min_jobs`` jobs, else on a pool of ``workers`` processes (``initializer``
    runs once per process, or once here)."""
    if workers <= 1 or len(jobs) < min_jobs:
        if initializer is not None:
            initializer(*initargs)
        return [fn(j) for j in tqdm(jobs, desc=desc, disable=not progress)]
    with mp_context().Pool(workers, initializer=initializer, initargs=initargs) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=chunksize), total=len(jobs), desc=desc, disable=not progress))
