"""Seed inputs from the shared captures: small captures cut from real files, and real flows' payloads.

Whole captures are up to 1.3 MB, too big to mutate usefully; seeds keep each file's headers (and every
pcapng interface block) with short windows of its records, so mutations hit record and packet bytes.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import CAPTURES, SAMPLES, shared_captures
from tests.fuzz.targets import encode_flow

WINDOW = 24  # records per seed capture
WINDOWS = 4  # windows per capture: its start and three more at seeded random places


def seed_files() -> list[Path]:
    return shared_captures() + sorted(p for p in SAMPLES.glob("*") if p.suffix in (".pcap", ".pcapng"))


def _pcap_records(data: bytes) -> tuple[bytes, list[bytes]]:
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, recs = 24, []
    while off + 16 <= len(data):
        caplen = struct.unpack_from(e + "I", data, off + 8)[0]
        recs.append(data[off : off + 16 + caplen])
        off += 16 + caplen
    return data[:24], recs


def _pcapng_blocks(data: bytes) -> list[tuple[bool, bytes]]:
    """(is packet block, block bytes); little- and big-endian sections alike."""
    off, out, e = 0, [], "<"
    while off + 12 <= len(data):
        if data[off : off + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack_from(e + "II", data, off)
        if blen < 12:
            break
        out.append((btype in (2, 3, 6), data[off : off + blen]))
        off += blen
    return out


def capture_seeds(rng: random.Random | None = None) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of small captures cut from every shared and sample capture."""
    rng = rng or random.Random(7)
    for path in seed_files():
        data = path.read_bytes()
        if data[:4] == b"\x0a\x0d\x0d\x0a":
            blocks = _pcapng_blocks(data)
            packets = [i for i, (is_pkt, _) in enumerate(blocks) if is_pkt]
            starts = [0] + [rng.randrange(len(packets)) for _ in range(WINDOWS - 1)] if packets else [0]
            for n, start in enumerate(starts):
                keep = set(packets[start : start + WINDOW])
                body = b"".join(b for i, (is_pkt, b) in enumerate(blocks) if not is_pkt or i in keep)
                yield f"{path.stem}-{n}", body
        else:
            header, recs = _pcap_records(data)
            starts = [0] + [rng.randrange(len(recs)) for _ in range(WINDOWS - 1)] if recs else [0]
            for n, start in enumerate(starts):
                yield f"{path.stem}-{n}", header + b"".join(recs[start : start + WINDOW])


def protocol_seeds(per_capture: int = 40) -> Iterator[tuple[str, bytes]]:
    """(name, fuzz input) of real flows: ports and the first sampled payloads of each direction."""
    from analyzer import flows as flowmod
    from analyzer.capture import CaptureStats, read_capture

    for path in seed_files():
        table = flowmod.FlowTable(str(path))
        for pkt in read_capture(path, CaptureStats(str(path))):
            table.add(pkt)
        records = [r for r in flowmod.finish(table, str(path)) if r.samples]
        seen: set[tuple] = set()
        kept = 0
        for rec in records:
            key = (rec.proto, rec.resp_p, rec.samples[0].payload[:2])
            if key in seen:
                continue
            seen.add(key)
            samples = [(s.from_orig, s.payload[:4096]) for s in rec.samples[:12]]
            yield (
                f"{path.stem}-{rec.proto}{rec.resp_p}-{kept}",
                encode_flow(rec.proto, rec.orig_p, rec.resp_p, samples),
            )
            kept += 1
            if kept >= per_capture:
                break


def crafted_protocol_seeds() -> Iterator[tuple[str, bytes]]:
    """Hand-made edge cases no real capture holds: loops and lengths that point past their container."""
    dns_loop = (
        struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
        + b"\x04loop\x00\x00\x01\x00\x01"
        + b"\xc0\x1d"
        + struct.pack("!HHIH", 1, 1, 60, 4)
        + bytes(4)
    )
    yield "crafted-dns-loop", encode_flow("udp", 40000, 53, [(True, dns_loop[:12]), (False, dns_loop)])
    ext = struct.pack("!HHHBH", 0, 16, 14, 0, 11) + b"example.org"
    body = b"\x03\x03" + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00" + struct.pack("!H", len(ext) + 300) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    yield (
        "crafted-tls-ext-past-record",
        encode_flow("tcp", 50000, 443, [(True, b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs)]),
    )
    initial = b"\xc3\x00\x00\x00\x01\x08" + bytes(range(8)) + b"\x00\x00\x7f\xff" + bytes(40)
    yield "crafted-quic-length-past-datagram", encode_flow("udp", 50000, 443, [(True, initial)])
    stun = (
        struct.pack("!HHI", 0x0101, 0xFFFC, 0x2112A442)
        + bytes(12)
        + struct.pack("!HH", 0x8022, 0xFFFF)
        + b"x"
    )
    yield "crafted-stun-lengths", encode_flow("udp", 50000, 3478, [(True, stun[:20]), (False, stun)])
    sip = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 9999999\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
    yield "crafted-sip-content-length", encode_flow("udp", 5060, 5060, [(True, sip)])


def write_seeds(kind: str, folder: Path) -> int:
    """Write the seeds of one target into `folder` (for libFuzzer's corpus arguments)."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = capture_seeds() if kind == "capture" else [*protocol_seeds(), *crafted_protocol_seeds()]
    n = 0
    for name, data in seeds:
        (folder / f"{name}.bin").write_bytes(data)
        n += 1
    return n


__all__ = ["CAPTURES", "capture_seeds", "protocol_seeds", "write_seeds"]
