"""A coverage-free mutation fuzzer: the fallback when atheris is not installed, and the pytest smoke run.

Mutations are the ones that break parsers in practice: bit flips, length fields set to boundary values,
inserted, deleted and duplicated chunks, truncation, and splices of two seeds. Every crash is saved as a
reproducer named by its content hash in tests/fuzz/corpus/<target>/, where pytest replays it.
"""

from __future__ import annotations

import hashlib
import random
import signal
import struct
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
HANG_SECONDS = 20.0
MAX_LEN = 1 << 17
_INTERESTING = (
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    11,
    12,
    13,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x3FFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFE,
    0xFFFFFFFF,
)


class Hang(BaseException):
    """Raised by the timer in a slow input; a BaseException so `except Exception` in code cannot eat it."""


def _alarm(_signum, _frame) -> None:
    raise Hang(f"input ran longer than {HANG_SECONDS:.0f} s")


def mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
        op = rng.randrange(9)
        n = len(buf)
        if op == 0 and n:  # bit flip
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # random byte
            buf[rng.randrange(n)] = rng.randrange(256)
        elif op == 2 and n >= 2:  # a length field set to a boundary value, either byte order
            size = rng.choice((2, 4)) if n >= 4 else 2
            i = rng.randrange(n - size + 1)
            v = rng.choice(_INTERESTING) & ((1 << (8 * size)) - 1)
            struct.pack_into(rng.choice("<>") + ("H" if size == 2 else "I"), buf, i, v)
        elif op == 3 and n:  # delete a chunk
            i = rng.randrange(n)
            del buf[i : i + rng.randrange(1, 64)]
        elif op == 4:  # insert random bytes
            i = rng.randrange(n + 1)
            buf[i:i] = rng.randbytes(rng.randrange(1, 32))
        elif op == 5 and n:  # duplicate a chunk elsewhere
            i = rng.randrange(n)
            chunk = buf[i : i + rng.randrange(1, 256)]
            j = rng.randrange(n + 1)
            buf[j:j] = chunk
        elif op == 6 and n:  # truncate
            del buf[rng.randrange(n) :]
        elif op == 7 and seeds:  # splice with another seed
            other = rng.choice(seeds)
            i, j = rng.randrange(n + 1), rng.randrange(len(other) + 1)
            buf = buf[:i] + other[j : j + rng.randrange(1, 4096)]
        elif op == 8 and n:  # small arithmetic on one byte (off-by-one lengths)
            i = rng.randrange(n)
            buf[i] = (buf[i] + rng.choice((-1, 1, -4, 4))) & 0xFF
    return bytes(buf[:MAX_LEN])


@dataclass
class Result:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    crashes: list[Path] = field(default_factory=list)


def save_crash(target: str, data: bytes) -> Path:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{hashlib.sha1(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return path


def run(
    target: str,
    fn: Callable[[bytes], None],
    seeds: list[bytes],
    seconds: float,
    seed: int = 0,
    max_inputs: int | None = None,
    save: bool = True,
) -> Result:
    """Mutate seeds for `seconds` (or `max_inputs`); every distinct crash site is saved once."""
    rng = random.Random(seed)
    result = Result(target)
    seen_sites: set[str] = set()
    old = signal.signal(signal.SIGALRM, _alarm)
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds and (max_inputs is None or result.inputs < max_inputs):
            base = seeds[rng.randrange(len(seeds))] if seeds else b""
            data = base if result.inputs < len(seeds) else mutate(base, rng, seeds)
            result.inputs += 1
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
            try:
                fn(data)
            except (Exception, Hang) as exc:  # noqa: BLE001 - every exception is a finding
                signal.setitimer(signal.ITIMER_REAL, 0)
                tb = traceback.extract_tb(exc.__traceback__)
                site = f"{type(exc).__name__}@{tb[-1].filename}:{tb[-1].lineno}" if tb else type(exc).__name__
                if site in seen_sites:
                    continue
                seen_sites.add(site)
                where = save_crash(target, data) if save else None
                result.crashes.append(where or Path(site))
                print(f"[{target}] CRASH {site} -> {where}", file=sys.stderr)
                traceback.print_exception(exc, file=sys.stderr)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    result.seconds = time.monotonic() - start
    return result


def render_sometimes(data: bytes) -> bool:
    """One input in 16, chosen by content so a reproducer replays the same way, also goes through reports."""
    return zlib.crc32(data) % 16 == 0
