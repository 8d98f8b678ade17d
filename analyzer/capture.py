"""Read pcap / pcapng (optionally gzip-compressed) and decode link, IP and TCP/UDP headers.

The per-packet path never builds scapy packets: records are walked over a memory map and headers are
decoded with `struct`. Every frame ends as a decoded `Packet` or as a skip counted under a named reason.
"""

from __future__ import annotations

import gzip
import mmap
import os
import struct
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.errors import CallauditError

# Link-layer types (LINKTYPE_* values as stored in pcap/pcapng) and their names as Wireshark shows them.
LINKTYPES = {
    0: "NULL", 1: "ETHERNET", 9: "PPP", 12: "RAW", 14: "RAW", 50: "PPP_HDLC", 101: "RAW",
    108: "LOOP", 113: "LINUX_SLL", 228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2",
}
MAX_RECORD = 256 * 1024  # larger than any real snaplen (Wireshark uses 262144); beyond it a record is damaged
GZIP_MAX_RATIO = 100  # a real capture compresses 2-10x; a ratio above this is a gzip bomb
GZIP_MIN_CAP = 512 * 1024 * 1024
GZIP_MAX_SECONDS = 600.0

SKIP_REASONS = (
    "non-ip", "not-tcp-udp", "unsupported-link-type", "truncated", "malformed",
    "fragment-without-first", "truncated-record", "damaged-record",
)


@dataclass(slots=True)
class Packet:
    """One decoded TCP or UDP packet; addresses are raw bytes (4 or 16) until a flow is formed."""

    frame: int
    ts: float
    src: bytes
    dst: bytes
    proto: int  # 6 TCP, 17 UDP
    sport: int
    dport: int
    flags: int  # TCP flags, 0 for UDP
    seq: int  # TCP sequence number, 0 for UDP
    ack: int  # TCP acknowledgement number, 0 for UDP
    length: int  # L4 payload length on the wire (from the IP header; snap-length cuts do not shrink it)
    payload: bytes  # captured L4 payload (may be shorter than `length`)
    fragment: bool = False
    ip_length: int = 0  # IP packet length on the wire (Zeek's *_ip_bytes)


@dataclass
class CaptureStats:
    """What was read from one capture file; `frames == decoded + sum(skipped.values())` always."""

    path: str
    format: str = ""
    link_types: list[str] = field(default_factory=list)
    frames: int = 0
    decoded: int = 0
    fragments: int = 0
    skipped: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = path_text(self.path)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def as_dict(self) -> dict:
        return {
            "path": self.path, "format": self.format, "link_types": self.link_types,
            "frames": self.frames, "decoded": self.decoded, "fragments": self.fragments,
            "skipped": dict(sorted(self.skipped.items())), "warnings": self.warnings,
        }


def path_text(path: str | os.PathLike) -> str:
    """A file name as valid Unicode: bytes the file system encoding cannot decode stay visible as \\xNN.

    Python keeps such bytes as lone surrogates, which no UTF-8 report (JSON, CSV, terminal) can encode.
    """
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


class _Skip(Exception):
    """Internal: a frame that cannot be decoded, with the reason it is counted under."""


_U16 = struct.Struct("!H")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HHH")
_IPV6_EXT = {0, 43, 60, 135, 139, 140}  # hop-by-hop, routing, destination options, mobility, HIP, shim6
GTP_U_PORT = 2152


class Decoder:
    """Decodes frames of one capture; keeps IP-fragment state so later fragments join their flow."""

    def __init__(self, stats: CaptureStats) -> None:
        self.stats = stats
        self._frag_ports: dict[tuple, tuple[int, int]] = {}

    def decode(self, frame: int, ts: float, linktype: int, data: bytes) -> Packet | None:
        """Decode one frame; count it as decoded or skipped. Returns None for a skipped frame."""
        try:
            pkt = self._link(frame, ts, linktype, data)
        except _Skip as skip:
            self.stats.skip(skip.args[0])
            return None
        except (struct.error, IndexError):
            self.stats.skip("truncated")
            return None
        self.stats.decoded += 1
        return pkt

    def _link(self, frame: int, ts: float, linktype: int, d: bytes) -> Packet:
        if linktype == 1:
            return self._ether(frame, ts, d, 12)
        if linktype in (101, 12, 14):
            return self._ip_any(frame, ts, d, 0)
        if linktype == 228:
            return self._ipv4(frame, ts, d, 0)
        if linktype == 229:
            return self._ipv6(frame, ts, d, 0)
        if linktype in (0, 108):
            if len(d) < 4:
                raise _Skip("truncated")
            fam = struct.unpack_from("<I" if linktype == 0 else "!I", d)[0]
            if linktype == 0 and fam > 0xFFFF:  # written on a big-endian host
                fam = struct.unpack_from("!I", d)[0]
            if fam == 2:
                return self._ipv4(frame, ts, d, 4)
            if fam in (10, 24, 28, 30):  # AF_INET6 differs between BSDs, macOS and Linux
                return self._ipv6(frame, ts, d, 4)
            raise _Skip("non-ip")
        if linktype == 113:  # Linux cooked v1: protocol at offset 14
            return self._ethertype(frame, ts, d, _U16.unpack_from(d, 14)[0], 16)
        if linktype == 276:  # Linux cooked v2: protocol at offset 0, header 20 bytes
            return self._ethertype(frame, ts, d, _U16.unpack_from(d, 0)[0], 20)
        if linktype in (9, 50):
            return self._ppp(frame, ts, d, 0)
        raise _Skip("unsupported-link-type")

    def _ether(self, frame: int, ts: float, d: bytes, off: int) -> Packet:
        etype = _U16.unpack_from(d, off)[0]
        off += 2
        while etype in (0x8100, 0x88A8, 0x9100):  # 802.1Q, 802.1ad QinQ, old QinQ
            etype = _U16.unpack_from(d, off + 2)[0]
            off += 4
        return self._ethertype(frame, ts, d, etype, off)

    def _ethertype(self, frame: int, ts: float, d: bytes, etype: int, off: int) -> Packet:
        if etype == 0x0800:
            return self._ipv4(frame, ts, d, off)
        if etype == 0x86DD:
            return self._ipv6(frame, ts, d, off)
        if etype in (0x8100, 0x88A8, 0x9100):
            return self._ethertype(frame, ts, d, _U16.unpack_from(d, off + 2)[0], off + 4)
        if etype == 0x8864:  # PPPoE session: 6-byte header then PPP protocol
            return self._ppp(frame, ts, d, off + 6, pppoe=True)
        raise _Skip("non-ip")

    def _ppp(self, frame: int, ts: float, d: bytes, off: int, pppoe: bool = False) -> Packet:
        if not pppoe and d[off:off + 2] == b"\xff\x03":  # HDLC address/control
            off += 2
        proto = d[off]
        if proto & 1:  # protocol-field compression: one byte
            off += 1
        else:
            proto = _U16.unpack_from(d, off)[0]
            off += 2
        if proto == 0x21:
            return self._ipv4(frame, ts, d, off)
        if proto == 0x57:
            return self._ipv6(frame, ts, d, off)
        raise _Skip("non-ip")

    def _ip_any(self, frame: int, ts: float, d: bytes, off: int) -> Packet:
        version = d[off] >> 4
        if version == 4:
            return self._ipv4(frame, ts, d, off)
        if version == 6:
            return self._ipv6(frame, ts, d, off)
        raise _Skip("non-ip")

    def _ipv4(self, frame: int, ts: float, d: bytes, off: int) -> Packet:
        if len(d) < off + 20:
            raise _Skip("truncated")
        vihl, _tos, total, ident, frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(d, off)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or total < ihl:
            raise _Skip("malformed")
        if len(d) < off + ihl:
            raise _Skip("truncated")
        end = min(len(d), off + total)
        frag_off = frag & 0x1FFF
        more = bool(frag & 0x2000)
        fragment = more or frag_off != 0
        return self._l4(frame, ts, d, off + ihl, end, total - ihl, src, dst, proto, fragment,
                        frag_off == 0, (src, dst, ident, proto), total)

    def _ipv6(self, frame: int, ts: float, d: bytes, off: int) -> Packet:
        if len(d) < off + 40:
            raise _Skip("truncated")
        vtf, plen, nxt, _hlim, src, dst = _IPV6.unpack_from(d, off)
        if vtf >> 28 != 6:
            raise _Skip("malformed")
        p = off + 40
        end = min(len(d), p + plen)
        remaining = plen
        fragment, first, frag_key = False, True, None
        for _ in range(16):  # bounded walk over extension headers
            if nxt in _IPV6_EXT:
                if len(d) < p + 2:
                    raise _Skip("truncated")
                hlen = (d[p + 1] + 1) * 8
                nxt = d[p]
            elif nxt == 51:  # AH: length in 4-byte units minus 2
                if len(d) < p + 2:
                    raise _Skip("truncated")
                hlen = (d[p + 1] + 2) * 4
                nxt = d[p]
            elif nxt == 44:  # fragment header
                if len(d) < p + 8:
                    raise _Skip("truncated")
                fo, ident = struct.unpack_from("!HI", d, p + 2)
                fragment, first = True, (fo >> 3) == 0
                nxt = d[p]
                hlen = 8
                frag_key = (src, dst, ident, nxt)
            else:
                break
            p += hlen
            remaining -= hlen
            if remaining < 0:
                raise _Skip("malformed")
        else:
            raise _Skip("malformed")
        return self._l4(frame, ts, d, p, end, remaining, src, dst, nxt, fragment, first, frag_key, plen + 40)

    def _l4(self, frame: int, ts: float, d: bytes, p: int, end: int, wire_len: int, src: bytes,
            dst: bytes, proto: int, fragment: bool, first: bool, frag_key: tuple | None,
            ip_length: int) -> Packet:
        if proto in (4, 41) and not fragment:  # IP-in-IP / 6in4: the inner packet is the flow
            return self._ipv4(frame, ts, d, p) if proto == 4 else self._ipv6(frame, ts, d, p)
        if proto not in (6, 17):
            raise _Skip("not-tcp-udp")
        if fragment:
            self.stats.fragments += 1
            if not first:  # later fragments carry no ports: join the flow of the first fragment
                ports = self._frag_ports.get(frag_key)
                if ports is None:
                    raise _Skip("fragment-without-first")
                return Packet(frame, ts, src, dst, proto, ports[0], ports[1], 0, 0, 0, wire_len,
                              b"", True, ip_length)
        flags = seq = ack = 0
        if proto == 6:
            if end < p + 20:
                raise _Skip("truncated")
            sport, dport, seq, ack, doff, flags = _TCP.unpack_from(d, p)
            hlen = (doff >> 4) * 4
            if hlen < 20:
                raise _Skip("malformed")
            payload_len = wire_len - hlen
            if payload_len < 0:
                raise _Skip("malformed")
            payload = d[p + hlen:end]
        else:
            if end < p + 8:
                raise _Skip("truncated")
            sport, dport, ulen = _UDP.unpack_from(d, p)
            payload_len = wire_len - 8
            if not fragment and 8 <= ulen <= wire_len:
                payload_len = ulen - 8
            payload = d[p + 8:min(end, p + 8 + payload_len)] if not fragment else d[p + 8:end]
            if GTP_U_PORT in (sport, dport) and not fragment:
                inner = self._gtp_u(frame, ts, payload)
                if inner is not None:
                    return inner
        if fragment:
            self._frag_ports[frag_key] = (sport, dport)
            if len(self._frag_ports) > 65536:  # bound the state on hostile input
                self._frag_ports.clear()
        return Packet(frame, ts, src, dst, proto, sport, dport, flags, seq, ack, payload_len, payload,
                      fragment, ip_length)

    def _gtp_u(self, frame: int, ts: float, d: bytes) -> Packet | None:
        """GTP-U v1 G-PDU (mobile core tunnel): the inner IP packet is the flow that matters."""
        if len(d) < 8 or d[0] >> 5 != 1 or not d[0] & 0x10 or d[1] != 0xFF:
            return None
        off = 8
        if d[0] & 0x07:  # sequence / N-PDU / next extension header present
            off = 12
            nxt = d[11]
            for _ in range(8):
                if not nxt or len(d) <= off:
                    break
                ext_len = d[off] * 4
                if ext_len == 0:
                    return None
                nxt = d[off + ext_len - 1]
                off += ext_len
        if len(d) <= off or d[off] >> 4 not in (4, 6):
            return None
        try:
            return self._ip_any(frame, ts, d, off)
        except (_Skip, struct.error, IndexError):
            return None


def _open_bytes(path: Path, stats: CaptureStats) -> tuple[mmap.mmap | bytes, object]:
    """Map the capture (decompressing gzip to a temporary file under size and time caps)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned with the map, closed by read_capture
    except OSError as exc:
        raise CallauditError(f"cannot open {path}: {exc.strerror or exc}") from None
    head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        fh.close()
        return _gunzip(path, stats)
    size = os.fstat(fh.fileno()).st_size
    if size == 0:
        fh.close()
        raise CallauditError(f"{path}: empty file, not a capture")
    try:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        fh.close()
        raise CallauditError(f"cannot map {path}: {exc}") from None
    return mm, fh


def _gunzip(path: Path, stats: CaptureStats) -> tuple[mmap.mmap, object]:
    compressed = path.stat().st_size
    cap = max(GZIP_MIN_CAP, GZIP_MAX_RATIO * compressed)
    deadline = time.monotonic() + GZIP_MAX_SECONDS
    tmp = tempfile.TemporaryFile(prefix="callaudit-")  # noqa: SIM115 - returned, closed by the caller
    written = 0
    try:
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read1(1 << 20):  # read1: a stream cut short keeps what came before
                written += len(chunk)
                if written > cap:
                    raise CallauditError(
                        f"{path}: gzip expands beyond {cap // (1 << 20)} MiB "
                        f"({GZIP_MAX_RATIO}x its size): refusing a likely gzip bomb")
                if time.monotonic() > deadline:
                    raise CallauditError(f"{path}: gzip decompression exceeded {GZIP_MAX_SECONDS:.0f} s")
                tmp.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        if written == 0:
            tmp.close()
            raise CallauditError(f"{path}: damaged gzip stream: {exc}") from None
        stats.warnings.append(f"gzip stream damaged after {written} bytes: {exc}")
    except CallauditError:
        tmp.close()
        raise
    if written == 0:
        tmp.close()
        raise CallauditError(f"{path}: empty gzip stream, not a capture")
    tmp.flush()
    mm = mmap.mmap(tmp.fileno(), 0, access=mmap.ACCESS_READ)
    stats.format = "gzip+"
    return mm, tmp


def read_capture(path: str | os.PathLike, stats: CaptureStats | None = None) -> Iterator[Packet]:
    """Yield decoded packets of one capture; `stats` (created if not given) accounts for every frame."""
    path = Path(path)
    stats = stats if stats is not None else CaptureStats(str(path))
    buf, handle = _open_bytes(path, stats)
    try:
        magic = bytes(buf[:4])
        decoder = Decoder(stats)
        if magic == b"\x0a\x0d\x0d\x0a":
            stats.format += "pcapng"
            records = _pcapng_records(buf, stats)
        elif magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
            stats.format += "pcap"
            records = _pcap_records(buf, stats)
        else:
            raise CallauditError(f"{path}: not a pcap or pcapng file (magic {magic.hex() or 'none'})")
        decode = decoder.decode
        for frame, ts, linktype, data in records:
            pkt = decode(frame, ts, linktype, data)
            if pkt is not None:
                yield pkt
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
        handle.close()


def _add_linktype(stats: CaptureStats, linktype: int) -> None:
    name = LINKTYPES.get(linktype, f"LINKTYPE_{linktype}")
    if name not in stats.link_types:
        stats.link_types.append(name)


def pcap_header(buf, stats: CaptureStats) -> tuple[str, int, int, float]:
    """Byte order, link type, largest believable record length and timestamp divisor of a pcap."""
    size = len(buf)
    if size < 24:
        raise CallauditError(f"{stats.path}: pcap header truncated ({size} bytes)")
    magic = bytes(buf[:4])
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    if nano:
        stats.format += "-ns"
    _vmaj, _vmin, _tz, _sig, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, 4)
    linktype = network & 0x0FFFFFFF
    _add_linktype(stats, linktype)
    limit = max(MAX_RECORD, snaplen if snaplen < (1 << 26) else 0)
    return endian, linktype, limit, 1e9 if nano else 1e6


def _pcap_records(buf, stats: CaptureStats) -> Iterator[tuple[int, float, int, bytes]]:
    """Walk classic pcap records (µs or ns timestamps, either byte order)."""
    size = len(buf)
    endian, linktype, limit, div = pcap_header(buf, stats)
    rec = struct.Struct(endian + "IIII")
    off, frame = 24, 0
    while off < size:
        frame += 1
        stats.frames += 1
        if off + 16 > size:
            stats.skip("truncated-record")
            stats.warnings.append(f"record header cut short at offset {off} (frame {frame})")
            return
        sec, frac, caplen, _origlen = rec.unpack_from(buf, off)
        if caplen > limit:
            stats.skip("damaged-record")
            stats.warnings.append(
                f"record at offset {off} (frame {frame}) claims {caplen} bytes: file damaged, reading stopped")
            return
        start = off + 16
        if start + caplen > size:
            stats.skip("truncated-record")
            stats.warnings.append(f"last record (frame {frame}) cut short: {size - start} of {caplen} bytes")
            return
        yield frame, sec + frac / div, linktype, buf[start:start + caplen]
        off = start + caplen


def _pcapng_records(buf, stats: CaptureStats) -> Iterator[tuple[int, float, int, bytes]]:
    """Walk pcapng blocks: sections, interfaces (link type, time resolution/offset), packet blocks."""
    for frame, ts, linktype, start, caplen in pcapng_index(buf, stats):
        yield frame, ts, linktype, buf[start:start + caplen]


def pcapng_index(buf, stats: CaptureStats) -> Iterator[tuple[int, float, int, int, int]]:
    """(frame, ts, link type, data offset, captured length) of every packet block; the fast path slices
    only the bytes it needs."""
    size = len(buf)
    off, frame = 0, 0
    endian = "<"
    interfaces: list[tuple[int, float, int, int]] = []  # (linktype, units per second, offset s, snaplen)
    while off < size:
        if off + 12 > size:
            stats.warnings.append(f"{size - off} trailing bytes after the last block")
            return
        btype = struct.unpack_from(endian + "I", buf, off)[0]
        if btype == 0x0A0D0D0A:  # section header: byte order may change per section
            bom = bytes(buf[off + 8:off + 12])
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                stats.warnings.append(f"bad section header at offset {off}: reading stopped")
                return
            interfaces = []
        blen = struct.unpack_from(endian + "I", buf, off + 4)[0]
        is_packet = btype in (2, 3, 6)
        if blen < 12 or blen % 4 or off + blen > size or blen > MAX_RECORD + 4096 and is_packet:
            if is_packet:
                frame += 1
                stats.frames += 1
                stats.skip("truncated-record" if off + blen > size and blen <= MAX_RECORD + 4096
                           else "damaged-record")
            stats.warnings.append(f"block at offset {off} (type {btype:#x}) has length {blen}: "
                                  f"file damaged or cut short, reading stopped")
            return
        body = off + 8
        if btype == 1 and blen < 20:  # interface description without its link type and snap length
            stats.warnings.append(f"interface block at offset {off} has length {blen}: file damaged, reading stopped")
            return
        if btype == 1:  # interface description
            linktype, _res, snaplen = struct.unpack_from(endian + "HHI", buf, body)
            units, tsoff = _idb_options(buf, body + 8, off + blen - 4, endian)
            interfaces.append((linktype, units, tsoff, snaplen))
            _add_linktype(stats, linktype)
        elif is_packet:
            frame += 1
            stats.frames += 1
            rec = _pcapng_packet(buf, btype, body, off + blen - 4, endian, interfaces)
            if rec is None:
                stats.skip("malformed")
            else:
                yield frame, *rec
        off += blen


def _idb_options(buf, p: int, end: int, endian: str) -> tuple[float, int]:
    units, tsoff = 1e6, 0
    while p + 4 <= end:
        code, olen = struct.unpack_from(endian + "HH", buf, p)
        if code == 0:
            break
        val = p + 4
        if val + olen > end:  # an option running past its block: ignore it and the rest
            break
        if code == 9 and olen >= 1:  # if_tsresol
            r = buf[val]
            units = float(2 ** (r & 0x7F)) if r & 0x80 else float(10 ** r)
        elif code == 14 and olen >= 8:  # if_tsoffset (seconds)
            tsoff = struct.unpack_from(endian + "q", buf, val)[0]
        p = val + ((olen + 3) & ~3)
    return units, tsoff


def _pcapng_packet(buf, btype: int, body: int, end: int, endian: str,
                   interfaces: list) -> tuple[float, int, int, int] | None:
    if btype == 6:  # enhanced packet block
        if body + 20 > end:
            return None
        iface, ts_hi, ts_lo, caplen, _orig = struct.unpack_from(endian + "IIIII", buf, body)
        data = body + 20
    elif btype == 3:  # simple packet block: interface 0, no timestamp
        if body + 4 > end:
            return None
        iface, ts_hi, ts_lo = 0, 0, 0
        orig = struct.unpack_from(endian + "I", buf, body)[0]
        data = body + 4
        caplen = min(orig, end - data)
    else:  # obsolete packet block
        if body + 20 > end:
            return None
        iface, _drops, ts_hi, ts_lo, caplen, _orig = struct.unpack_from(endian + "HHIIII", buf, body)
        data = body + 20
    if iface >= len(interfaces) or data + caplen > end:
        return None
    linktype, units, tsoff, _snap = interfaces[iface]
    ts = ((ts_hi << 32) | ts_lo) / units + tsoff
    return ts, linktype, data, caplen
