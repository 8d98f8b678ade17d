"""Fuzz targets: one function per attack surface, each raising only when the analyzer has a bug.

`capture_target` treats bytes as a capture file and runs the whole per-capture pipeline; `protocols_target`
treats bytes as a flow (ports plus sampled payloads) and runs every protocol module over it. A
`CallauditError` with a one-line message is the accepted way to refuse an input; any other exception,
a broken count, or a string that cannot be written as UTF-8 JSON is a finding.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import ipaddress
import json
import os
import struct
import sys
import tempfile
import zlib
from pathlib import Path

from analyzer import protocols
from analyzer.capture import SKIP_REASONS, CaptureStats
from analyzer.errors import CallauditError
from analyzer.protocols import Facts, FlowView, Sample

_SCRATCH: Path | None = None


def scratch_file() -> Path:
    """One reusable file (in RAM where possible): captures are read through a path and mmap."""
    global _SCRATCH
    if _SCRATCH is None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        fd, name = tempfile.mkstemp(prefix="callaudit-fuzz-", suffix=".pcap", dir=base)
        os.close(fd)
        _SCRATCH = Path(name)
    return _SCRATCH


def check_stats(stats: CaptureStats) -> None:
    """The accounting rule every input must keep, whatever its bytes."""
    assert stats.frames == stats.decoded + sum(stats.skipped.values()), stats.as_dict()
    assert set(stats.skipped) <= set(SKIP_REASONS), stats.skipped
    assert all(v > 0 for v in stats.skipped.values()), stats.skipped
    assert all("\n" not in w for w in stats.warnings), stats.warnings


def check_text(value: object, where: str = "") -> None:
    """Every string a report may print must encode as UTF-8 (no lone surrogates from decoding)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, where)
            check_text(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            check_text(v, where)


def check_rows(rows: list[dict]) -> None:
    for row in rows:
        check_text(row)
        for col in ("resp_h", "orig_h"):
            ipaddress.ip_address(row[col])
        assert row["resp_p"] is None or 0 <= int(row["resp_p"]) <= 65535, row
        assert all(isinstance(f, int) and f >= 1 for f in row["key_frames"]), row["key_frames"]


def capture_target(data: bytes, render: bool = False) -> None:
    """Bytes as a capture file through `analyze_capture`; with `render`, through every report format."""
    from analyzer.pipeline import analyze_capture

    path = scratch_file()
    path.write_bytes(data)
    try:
        if render:
            _render_all(path)
            return
        stats, rows = analyze_capture(path)
    except CallauditError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        return
    check_stats(stats)
    check_rows(rows)


_GEO = None


def _render_all(path: Path) -> None:
    """analyze() with the embedded GeoIP data, then JSON, CSV and terminal renderings checked."""
    global _GEO
    from rich.console import Console

    from analyzer.geo import GeoLookup
    from analyzer.jurisdiction import policy_from_expect
    from analyzer.pipeline import analyze
    from analyzer.report import tabular, terminal

    if _GEO is None:
        _GEO = GeoLookup()
    audit = analyze([path], _GEO, policy_from_expect("US,EU"))
    for stats in audit.captures:
        check_stats(stats)
    text = tabular.to_json(audit)
    doc = json.loads(text.encode("utf-8"))
    cap = doc["captures"][0]
    assert cap["frames"] == cap["decoded"] + sum(cap["skipped"].values())
    tabular.to_csv(audit).encode("utf-8")
    buf = io.StringIO()
    terminal.render(audit, Console(file=buf, width=200, force_terminal=True, color_system="truecolor"))
    out = buf.getvalue()
    out.encode("utf-8")
    assert f"frames {cap['frames']}, decoded {cap['decoded']}" in out
    if importlib.util.find_spec("analyzer.report.html"):
        from analyzer.report import html

        html.render(audit).encode("utf-8")


# ---- protocols -------------------------------------------------------------------------------------------


def module_names() -> list[str]:
    """Every protocol module the pipeline runs: new modules are fuzzed as soon as they are registered."""
    return list(protocols.MODULES)


def interesting_ports() -> list[int]:
    """Ports that switch protocol modules on: each module's own PORTS plus the flow table's server ports."""
    from analyzer.flows import BUSY_SAMPLE_PORTS, SERVER_PORTS

    ports = set(SERVER_PORTS) | set(BUSY_SAMPLE_PORTS) | {1, 1024, 40000, 65535}
    for name in module_names():
        mod = importlib.import_module(f"analyzer.protocols.{name}")
        for attr in dir(mod):
            val = getattr(mod, attr)
            if attr.isupper() and "PORT" in attr:
                if isinstance(val, int):
                    ports.add(val)
                elif isinstance(val, (set, frozenset, list, tuple, range, dict)):
                    ports.update(p for p in val if isinstance(p, int) and 0 <= p <= 65535)
    return sorted(ports)


_PORTS: list[int] | None = None
_HDR = struct.Struct("!BHH")
_REC = struct.Struct("!BH")


def encode_flow(proto: str, orig_p: int, resp_p: int, samples: list[tuple[bool, bytes]]) -> bytes:
    """The fuzz input format of one flow: header (proto, ports) then (flags, length, payload) records."""
    out = bytearray(_HDR.pack(1 if proto == "tcp" else 0, orig_p, resp_p))
    for from_orig, payload in samples:
        payload = payload[:0xFFFF]
        out += _REC.pack(1 if from_orig else 0, len(payload)) + payload
    return bytes(out)


def decode_flow(data: bytes) -> FlowView:
    """Inverse of `encode_flow`, total: any bytes give some flow (a short header picks well-known ports).

    Header bit 1 maps ports through the list of interesting ports, so random bytes still reach modules
    that only look at their own ports. Record flag bit 1 overlaps the previous segment (a retransmission),
    bit 2 leaves a gap; TCP sequence numbers start near 2**32 so reassembly wraps around.
    """
    global _PORTS
    if _PORTS is None:
        _PORTS = interesting_ports()
    data = data + b"\0" * max(0, _HDR.size - len(data))
    kind, p1, p2 = _HDR.unpack_from(data)
    if kind & 2:
        p1, p2 = _PORTS[p1 % len(_PORTS)], _PORTS[p2 % len(_PORTS)]
    proto = "tcp" if kind & 1 else "udp"
    seq = {True: 0xFFFFFF00, False: 1000}
    samples = []
    off = _HDR.size
    while off < len(data) and len(samples) < 64:
        if off + _REC.size > len(data):
            flags, n = data[off], len(data) - off - 1
            off += 1
        else:
            flags, n = _REC.unpack_from(data, off)
            off += _REC.size
        payload = data[off : off + n]
        off += n
        from_orig = bool(flags & 1)
        s = seq[from_orig]
        if flags & 2:
            s -= min(len(payload), 7)
        if flags & 4:
            s += 3
        samples.append(
            Sample(
                len(samples) + 1, 1_700_000_000.0 + len(samples) * 0.01, from_orig, s & 0xFFFFFFFF, payload
            )
        )
        seq[from_orig] = (s + len(payload)) & 0xFFFFFFFF
    return FlowView(proto, p1, p2, samples)


def protocols_target(data: bytes) -> None:
    """One flow through every module's `client_hint` and `inspect`; facts must be printable as JSON."""
    view = decode_flow(data)
    for name in module_names():
        mod = importlib.import_module(f"analyzer.protocols.{name}")
        for s in view.samples[:16]:
            for sport, dport in ((view.orig_p, view.resp_p), (view.resp_p, view.orig_p)):
                hint = mod.client_hint(s.payload, sport, dport)
                assert hint is None or isinstance(hint, bool), (name, hint)
    facts = protocols.inspect(view)  # every module in turn on one Facts, as the pipeline runs them
    _check_facts(facts, "all")


def _check_facts(facts: Facts, name: str) -> None:
    check_text(facts.__dict__, name)
    assert facts.server_name is None or isinstance(facts.server_name, str), (name, facts.server_name)
    assert all(isinstance(f, int) for f in facts.key_frames), (name, facts.key_frames)
    for addr, qname, frame in facts.dns_answers:
        ipaddress.ip_address(addr)
        assert isinstance(qname, str) and isinstance(frame, int), (name, qname, frame)
    for ep in facts.endpoints:  # the pipeline turns each into a row: it must hold an address and a port
        ipaddress.ip_address(ep["h"])
        assert 0 <= int(ep["p"]) <= 65535 and isinstance(ep["frame"], int), (name, ep)
    json.dumps(facts.details, ensure_ascii=False).encode("utf-8")


# ---- the numpy fast path (analyzer/fastpath.py) against the per-packet path --------------------------------


def _table_summary(stats: CaptureStats, table) -> tuple:
    flows = sorted(
        (k, tuple(f.pkts), tuple(f.bytes), f.first_frame, len(f.samples)) for k, f in table.flows.items()
    )
    return stats.frames, stats.decoded, dict(stats.skipped), flows


def fastpath_target(data: bytes) -> None:
    """Same bytes through `fastpath.read_table` and `FlowTable.add`: same accounting, same flows.

    A no-op until analyzer/fastpath.py exists; then every capture input is a differential test.
    """
    try:
        from analyzer import fastpath
    except ImportError:
        return
    from analyzer.capture import read_capture
    from analyzer.flows import FlowTable

    path = scratch_file()
    path.write_bytes(data)
    results = []
    for fast in (False, True):
        stats = CaptureStats(str(path))
        try:
            if fast:
                table = fastpath.read_table(path, stats, str(path))
            else:
                table = FlowTable(str(path))
                for pkt in read_capture(path, stats):
                    table.add(pkt)
        except CallauditError:
            results.append("refused")
            continue
        check_stats(stats)
        results.append(_table_summary(stats, table))
    assert results[0] == results[1], (
        f"per-packet {str(results[0])[:400]} != fast path {str(results[1])[:400]}"
    )
    # one input in 8 (a fork each): the same capture read by two processes. Not under atheris: libFuzzer's
    # own threads hold locks its malloc hooks need, so a forked child can hang (pytest's corpus replay and
    # the random mutator run it)
    if zlib.crc32(data) % 8 == 0 and "atheris" not in sys.modules:
        _two_halves(path)


def _two_halves(path: Path) -> None:
    """`read_table` with the second half read by a forked process (split guessed as for a big pcap), and with
    it read ahead (`read_ahead`, before the first half), equals the one-process read: flows, counters,
    samples and every count and warning."""
    from dataclasses import astuple

    from analyzer import fastpath, forked

    results = []
    saved = fastpath.PARALLEL_BYTES, forked.cores
    fastpath.PARALLEL_BYTES, forked.cores = 0, lambda: 2
    try:
        for parallel, early in ((False, False), (True, False), (True, True)):
            stats = CaptureStats(str(path))
            ahead = fastpath.read_ahead(path) if early else None
            try:
                table = fastpath.read_table(path, stats, stats.path, parallel=parallel, ahead=ahead)
            except CallauditError as exc:
                results.append(("refused", str(exc)))
                continue
            finally:
                if ahead is not None:
                    ahead.close()
            results.append((stats.as_dict(), [(k, astuple(f)) for k, f in table.flows.items()],
                             table.sampled_total, table.unsampled))
    finally:
        fastpath.PARALLEL_BYTES, forked.cores = saved
    assert results[0] == results[1] == results[2], (
        f"one process {str(results[0])[:400]} != two {str(results[1])[:400]} or read ahead {str(results[2])[:400]}")
