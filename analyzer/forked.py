"""ordered_map: a function over a list of items on two cores, results handed on in the items' order."""

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


def ordered_map(fn: Callable[[Any], Any], items: Sequence, split: bool = True) -> Iterator:
    """`fn(item)` for each item, in order. With `split`, two cores and two items or more, a forked child
    computes the odd items and streams each result back through a pipe (it blocks once PIPE_BYTES of
    results wait to be read), while this process computes the even ones: the results do not depend on
    who computed what. The child shares this process's memory copy-on-write and never returns."""
    if not split or len(items) < 2 or cores() < 2 or not hasattr(os, "fork"):
        for item in items:
            yield fn(item)
        return
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
            with open(w, "wb") as out:
                for item in items[1::2]:
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
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    try:
        with open(r, "rb") as inp:
            for i, item in enumerate(items):
                if i % 2 == 0:
                    yield fn(item)
                    continue
                try:
                    ok, value = pickle.load(inp)
                except EOFError:
                    raise RuntimeError("the forked worker process ended early") from None
                if not ok:
                    raise value
                yield value
    finally:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if not done:  # stopped early (an error here): the child is not needed any more
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        gc.unfreeze()
