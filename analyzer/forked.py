"""Work on the second core: `Worker`, a forked child whose results come back in order, and `ordered_map`, a
function over a list of items on two cores, results handed on in the items' order."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def cores() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


PIPE_BYTES = 1 << 20  # the child may run this far ahead of the parent (Linux's default pipe-max-size)


def _widen(fd: int) -> None:
    """Let the pipe hold PIPE_BYTES (64 KiB by default), so that the child can go on to its next item
    while the parent is still busy with its own; where that cannot be had, the default stays."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def can_fork() -> bool:
    """Is there a second core, and a fork to put it to work?"""
    return cores() >= 2 and hasattr(os, "fork")


def ordered_map(fn: Callable[[Any], Any], items: Sequence, split: bool = True) -> Iterator:
    """`fn(item)` for each item, in order. With `split`, two cores and two items or more, a `Worker` computes
    the odd items while this process computes the even ones: the results do not depend on who computed what."""
    if not split or len(items) < 2 or not can_fork():
        for item in items:
            yield fn(item)
        return
    worker = Worker(fn, items[1::2])
    try:
        for i, item in enumerate(items):
            yield fn(item) if i % 2 == 0 else worker.result()
    finally:
        worker.close()


class Worker:
    """A forked child computing `fn(item)` for each item, starting now, and streaming each result back through
    a pipe (it blocks once PIPE_BYTES of results wait to be read). The child shares this process's memory
    copy-on-write and never returns; `result()` hands on its results in order. Close it."""

    def __init__(self, fn: Callable[[Any], Any], items: Sequence) -> None:
        r, w = os.pipe()
        _widen(w)
        # objects that exist now are left out of garbage collection while the two processes share them: a
        # collection writes to every object it scans, and each page it touches would be copied (~60 MB)
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the child: never runs the parent's exit handlers nor flushes its buffered output
            status = 1
            try:
                os.close(r)
                _serve(fn, items, w)
                status = 0
            finally:
                os._exit(status)
        os.close(w)
        self.pid: int | None = pid
        self._inp = open(r, "rb")  # noqa: SIM115 - closed by close()

    def result(self) -> Any:
        """The child's next result; its exception if it raised one."""
        try:
            ok, value = pickle.load(self._inp)
        except EOFError:
            raise RuntimeError("the forked worker process ended early") from None
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """End the child if it still runs (its results are not wanted any more) and reap it."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        self._inp.close()
        done, _ = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        gc.unfreeze()


def _serve(fn: Callable[[Any], Any], items: Sequence, w: int) -> None:
    """The child's loop: each result (or the exception that stopped it) pickled to the pipe."""
    with open(w, "wb") as out:
        for item in items:
            try:
                result = (True, fn(item))
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
                try:
                    pickle.dumps(exc)
                    result = (False, exc)
                except Exception:  # noqa: BLE001 - not picklable: its text
                    result = (False, RuntimeError(traceback.format_exc()))
            pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
            if not result[0]:
                break
