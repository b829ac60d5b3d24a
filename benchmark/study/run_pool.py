"""A study's in-process runs side by side: worker processes with one intra-op thread each, so that a run's numbers
never depend on how many runs share the machine, on its core count, or on whether the study was resumed."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TypeVar

import torch
from tqdm import tqdm

RUN_THREADS = 1  # intra-op threads of every in-process run (part of its run key: numbers depend on it)
T = TypeVar("T")


class RunFailed(RuntimeError):
    """One run of the study raised; the message names it. Finished runs are kept, so a rerun resumes."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def run_threads() -> Iterator[None]:
    """Run the body with `RUN_THREADS` intra-op threads, restoring the previous count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(RUN_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _init_worker(includes: tuple[str, ...]) -> None:
    """A fresh worker: one intra-op thread, and the user's plugin files registered as in the parent."""
    torch.set_num_threads(RUN_THREADS)
    if includes:
        from benchmark.registry import include_models

        include_models(includes)


def run_all(tasks: Sequence[T], work: Callable[[T], None], *, jobs: int, label: Callable[[T], str],
            includes: tuple[str, ...] = (), desc: str = "runs") -> None:
    """Call `work` (a module-level function) on every task, `jobs` at a time in spawned workers (in this process when
    `jobs` is 1), with a progress bar and an ETA. The first failure stops new runs and raises `RunFailed`."""
    bar = tqdm(total=len(tasks), desc=desc, unit="run")
    began = time.perf_counter()

    def done(task: T, start: float) -> None:
        bar.update()
        tqdm.write(f"done {label(task)} ({time.perf_counter() - start:.0f} s)")

    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            start = time.perf_counter()
            tqdm.write(f"run {label(task)}")
            with run_threads():
                _call(work, task, label)
            done(task, start)
        bar.close()
        return
    context = multiprocessing.get_context("spawn")  # fork would copy this process's threads and locks
    with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=context, initializer=_init_worker,
                             initargs=(tuple(includes),)) as pool:
        started: dict[Future, tuple[T, float]] = {}
        queue = list(tasks)
        while queue or started:
            while queue and len(started) < jobs:
                task = queue.pop(0)
                tqdm.write(f"run {label(task)}")
                started[pool.submit(work, task)] = (task, time.perf_counter())
            finished, _ = wait(started, return_when=FIRST_COMPLETED)
            for future in finished:
                task, start = started.pop(future)
                error = future.exception()
                if error is not None:
                    queue.clear()
                    for other in started:
                        other.cancel()
                    raise _failure(label(task), error) from error
                done(task, start)
    bar.close()
    tqdm.write(f"{len(tasks)} runs in {time.perf_counter() - began:.0f} s ({jobs} at a time, "
               f"{RUN_THREADS} thread each)")


def _call(work: Callable[[T], None], task: T, label: Callable[[T], str]) -> None:
    try:
        work(task)
    except Exception as error:
        raise _failure(label(task), error) from error


def _failure(name: str, error: BaseException) -> RunFailed:
    if isinstance(error, BrokenProcessPool):
        return RunFailed(f"run {name}: its worker process died (killed for memory?). Finished runs are kept: rerun "
                         "the same command with --jobs 1 to resume with fewer runs at a time.")
    return RunFailed(f"run {name} failed: {type(error).__name__}: {error}. Finished runs are kept: fix the cause "
                     "and rerun the same command to resume.")
