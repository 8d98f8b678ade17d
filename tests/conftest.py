"""Shared fixtures: paths to the shared captures and GeoIP test data, and small capture writers."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CAPTURES = SHARED / "captures"
GEOIP_TEST = SHARED / "geoip-test-data"
SAMPLES = ROOT / "pcaps"


def shared_captures() -> list[Path]:
    return sorted(p for p in CAPTURES.glob("*") if p.suffix in (".pcap", ".pcapng"))


def manifest_counts() -> dict[str, int]:
    """Packet counts per file from the shared MANIFEST (counted there by tshark)."""
    counts = {}
    for line in (CAPTURES / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 8 and cells[1].startswith("`") and cells[7].isdigit():
            counts[cells[1].strip("`")] = int(cells[7])
    return counts


def messages_passed_to(module, name: str) -> list[bytes]:
    """Every message the pipeline hands to `module.name` while it reads all shared captures."""
    from analyzer.pipeline import analyze_capture

    seen: list[bytes] = []
    original = getattr(module, name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, name, lambda m: seen.append(bytes(m)) or original(m))
        for path in shared_captures():
            analyze_capture(path)
    return seen


def write_pcap(path: Path, frames: list[bytes], linktype: int = 1, nano: bool = False, big: bool = False,
               gz: bool = False, ts0: float = 1_700_000_000.0) -> Path:
    """A classic pcap with the given frames, one per 10 ms."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
    for i, f in enumerate(frames):
        ts = ts0 + i * 0.01
        frac = round((ts % 1) * (1e9 if nano else 1e6))
        out += struct.pack(e + "IIII", int(ts), frac, len(f), len(f)) + f
    data = gzip.compress(bytes(out), mtime=0) if gz else bytes(out)
    path.write_bytes(data)
    return path


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng(path: Path, frames: list[tuple[int, bytes]], linktypes: list[int], tsresol: int | None = None,
                 extra_blocks: bool = True) -> Path:
    """A pcapng with one IDB per link type; frames are (interface index, bytes)."""
    out = bytearray(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    for lt in linktypes:
        opts = b""
        if tsresol is not None:
            opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
        out += _block(1, struct.pack("<HHI", lt, 0, 0) + opts)
    if extra_blocks:
        out += _block(0x0BAD, b"unknown custom block")
    units = 10 ** (tsresol or 6)
    for i, (iface, f) in enumerate(frames):
        t = int((1_700_000_000 + i * 0.01) * units)
        out += _block(6, struct.pack("<IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(f), len(f)) + f)
    path.write_bytes(bytes(out))
    return path


@pytest.fixture(autouse=True)
def _no_machine_geoip(monkeypatch):
    """GeoIP discovery never sees this machine's GeoIP.conf or /usr/share/GeoIP: tests stay reproducible."""
    from analyzer import geo

    monkeypatch.setattr(geo, "CONF_FILES", ())
    monkeypatch.setattr(geo, "SYSTEM_DIRS", ())
    monkeypatch.setenv("CALLAUDIT_GEOIP_SYSTEM_DIRS", "")  # also for the CLI run as a subprocess
    for name in ("GEOIPUPDATE_DB_DIR", "GEOIPUPDATE_CONF_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def geo():
    from analyzer.geo import GeoLookup

    lookup = GeoLookup()
    yield lookup
    lookup.close()
