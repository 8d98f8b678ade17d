"""A rich progress bar on stderr for long captures and campaigns; none when stderr is not a terminal.

The bar measures bytes of capture files (the pipeline estimates bytes read from packet lengths), so one
large capture moves as smoothly as forty small ones; a gzip file's share is its compressed size.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from analyzer.pipeline import Progress as Callback
from analyzer.report.escape import terminal


def enabled(stream: object = None) -> bool:
    """Only for a person watching: stderr is a terminal and TERM is not 'dumb'."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


@contextmanager
def bar(paths: list[Path], show: bool | None = None) -> Iterator[Callback | None]:
    """Yields the callback for `analyze(progress=...)`, or None when no bar is shown."""
    if not (enabled() if show is None else show):
        yield None
        return
    # rich only for a bar shown: ~25 ms of imports that files, pipes and CI runs do not need
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    sizes = {}
    for p in paths:
        try:
            sizes[str(p)] = max(1, p.stat().st_size)
        except OSError:
            sizes[str(p)] = 1
    total = sum(sizes.values())
    done = {"bytes": 0, "captures": 0}
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[frames]:>10,} frames"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("reading", total=total, frames=0)

        def update(path: str, frames: int, nbytes: int, finished: bool) -> None:
            size = sizes.get(path, 1)
            name = terminal(Path(path).name)
            label = f"[{done['captures'] + 1}/{len(paths)}] {name[:40]}" if len(paths) > 1 else name[:50]
            if finished:
                done["bytes"] += size
                done["captures"] += 1
                progress.update(task, completed=done["bytes"], frames=frames, description=label)
            else:
                within = min(nbytes, int(size * 0.99))
                progress.update(task, completed=done["bytes"] + within, frames=frames, description=label)

        yield update
