"""Where a search's tasks run: in this process, in local worker processes, or on a Dask cluster.

One interface — ``submit_all(fn, items)`` yields results in item order — behind three
executors, so the search code never knows which one runs it. Every task is a pure function of
its arguments (the seed travels with it), so the results are the same whichever runs them.

Usage::

    >>> from sim.search.executor import make_executor
    >>> with make_executor(workers=1) as ex:
    ...     list(ex.submit_all(abs, [-1, 2, -3]))
    [1, 2, 3]

* ``make_executor(workers=N)``: N local processes (``fork``; ``spawn`` when other threads run,
  as in the Streamlit app; workers ignore Ctrl-C, the caller handles it); N = 1 runs inline.
* ``make_executor("tcp://host:8786")``: a Dask ``distributed`` scheduler (the optional
  dependency ``distributed``; `uv sync` installs it with the dev group). Workers need this
  project importable — the same checkout and `uv sync` on each machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Executor", "InlineExecutor", "ProcessExecutor", "DaskExecutor", "make_executor", "ExecutorError", "default_workers"]


class ExecutorError(ValueError):
    """The executor cannot start (a scheduler that does not answer, Dask not installed)."""


def default_workers() -> int:
    """The machine's cores available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Executor:
    """Runs ``fn(item)`` for each item; ``submit_all`` yields the results in item order."""

    workers: int = 1
    name: str = "inline"

    def submit_all(self, fn: Callable[[Any], Any], items: Iterable[Any], cancel=None) -> Iterator[Any]:
        """Results in item order; stops early (dropping what has not run) once `cancel` is set."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Drop tasks not started yet (tasks already running finish within their own budgets)."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class InlineExecutor(Executor):
    """Tasks run one after another in this process (the default for one worker)."""

    def submit_all(self, fn, items, cancel=None):
        for x in items:
            if cancel is not None and cancel.is_set():
                return
            yield fn(x)


def _in_order(futures, timeouts: tuple, cancel, stop):
    """Each future's result in submission order, polled every 0.2 s so that a set `cancel`
    (or Ctrl-C in the caller) is seen at once; on cancel, `stop()` and end early."""
    for f in futures:
        while True:
            if cancel is not None and cancel.is_set():
                stop()
                return
            try:
                res = f.result(timeout=0.2)
                break
            except timeouts:
                continue
        yield res


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessExecutor(Executor):
    """`workers` local processes (started on first use and kept for the whole search)."""

    name = "processes"

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None
        self._futures: list = []

    def _get(self):
        if self._pool is None:
            import multiprocessing
            import threading
            from concurrent.futures import ProcessPoolExecutor

            # fork is fast and needs no importable __main__, but is unsafe beside other threads
            # (the Streamlit app runs scripts in threads): spawn there.
            method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context(method),
                                             initializer=_ignore_sigint)
        return self._pool

    def submit_all(self, fn, items, cancel=None):
        from concurrent.futures import TimeoutError as _Timeout

        pool = self._get()
        self._futures = [pool.submit(fn, x) for x in items]
        yield from _in_order(self._futures, (_Timeout,), cancel, self.cancel)

    def cancel(self) -> None:
        for f in self._futures:
            f.cancel()
        if self._pool is not None and any(not f.done() for f in self._futures):
            # Tasks already running (a simulation) would hold the caller until they end.
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(Executor):
    """Tasks on a Dask `distributed` cluster at `address` (``tcp://host:port``)."""

    name = "dask"

    def __init__(self, address: str, timeout_s: float = 10.0):
        try:
            from distributed import Client
        except ImportError:
            raise ExecutorError("--executor tcp://… needs Dask's `distributed` package: `uv sync` (dev group) or "
                                "`pip install distributed`") from None
        try:
            self.client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        info = self.client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
        self._futures: list = []

    def submit_all(self, fn, items, cancel=None):
        from distributed import TimeoutError as _Timeout

        self._futures = self.client.map(fn, list(items), pure=False)
        yield from _in_order(self._futures, (_Timeout, TimeoutError), cancel, self.cancel)

    def cancel(self) -> None:
        if self._futures:
            self.client.cancel(self._futures)

    def close(self) -> None:
        self.client.close()


def make_executor(address: str | None = None, workers: int | None = None) -> Executor:
    """A Dask executor for ``tcp://…`` addresses, else local processes (inline for one worker)."""
    if address:
        if not address.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
            raise ExecutorError(f"executor '{address}': expected a Dask scheduler address such as tcp://host:8786")
        return DaskExecutor(address)
    n = default_workers() if workers is None else workers
    if n < 1:
        raise ExecutorError(f"workers must be at least 1, got {n}")
    return InlineExecutor() if n == 1 else ProcessExecutor(n)
