"""Vectorised capture reading: a capture becomes the same `FlowTable` that `FlowTable.add` builds, ~10x faster.

Why: the per-packet Python path costs 3-5 µs a packet; an hour-long call is a million packets. Here pcap
records are indexed by walking many record chains in lockstep with numpy (each chain's start is a guess that
the chain before it must land on exactly, so the index is the one a sequential walk gives), headers of the
common frames (Ethernet ± 2 VLAN tags, Linux SLL/SLL2, raw IP; IPv4 without fragments, IPv6 without
extension headers; TCP/UDP) are gathered at computed offsets, and flows are aggregated with group-bys.
Every other frame (tunnels, fragments, extension headers, odd link types, truncation) goes through the
per-frame `Decoder`, so results and skip accounting are identical. The file is processed region by region
(pages released after each), so memory stays bounded whatever the capture size. A big pcap is read by two
processes at once, a half each (`_read_halves`), joined only when that provably changes nothing.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import as_strided

from analyzer import forked
from analyzer.capture import (
    GTP_U_PORT,
    CallauditError,
    CaptureStats,
    Decoder,
    Packet,
    _open_bytes,
    pcap_header,
    pcapng_index,
)
from analyzer.flows import (
    BUSY_SAMPLE_BYTES,
    BUSY_SAMPLE_PORTS,
    SAMPLE_BYTES,
    SAMPLE_BYTES_TOTAL,
    SAMPLE_PACKETS,
    TCP_ACK,
    TCP_SYN,
    FlowColumns,
    FlowTable,
)
from analyzer.memory import give_back

REGION_BYTES = 32 << 20  # file bytes indexed at a time; their pages are released once decoded
BATCH = 1 << 16  # records decoded at a time: bounds the per-packet temporaries (~25 MB)
MIN_SEGMENT = 65536  # a chain walks at least this many bytes (> SYNC_WINDOW)
SEGMENTS = 1024  # record chains walked in lockstep per region
FRAME_WINDOW = 80  # bytes of each frame read for headers: Ethernet + 2 VLAN tags + IPv6 + TCP up to its flags
SYNC_WINDOW = 2048  # bytes searched for a plausible record header at each chain's guessed start
SYNC_STEPS = (512, 1024)  # ... first this far, then this far (each for the guesses still without one), then all
READ_GAP = 64 << 10  # sample payloads closer than this are read with one pread
READ_RUN = 8 << 20  # ... of at most about this many bytes
BATCH_FLOWS = 1024  # flows handed on at a time by `batch_parts`
BATCH_SAMPLE_BYTES = 8 << 20  # ... with about this much sampled payload at most (one flow may exceed it)
# a kept sample's columns: flow id, frame, time, side, TCP sequence number, file offset of its payload (or
# -1 - index into `payload_list`), payload length
SAMPLE_DTYPES = (np.int64, np.int64, np.float64, np.int8, np.uint32, np.int64, np.int32)
KEY = ("fam", "proto", "ahi", "alo", "ap", "bhi", "blo", "bp")  # the columns of a flow's key
PARALLEL_BYTES = 64 << 20  # pcaps at least this big are read by two processes (`_read_halves`)
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
_M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)

_BUSY = np.zeros(65536, np.int64)
for _port, _cap in BUSY_SAMPLE_PORTS.items():
    _BUSY[_port] = _cap


class _Collision(Exception):
    """Two different flow keys hashed alike (never seen; the exact slow path then takes over)."""


class _Views:
    """Reads at arbitrary byte offsets of the buffer: byte windows as rows of a strided view, integers
    from aligned 64-bit words (numpy's unaligned byte-swapping gathers are ~10x slower)."""

    def __init__(self, buf, endian: str = "<") -> None:
        n = len(buf)
        self.size = n
        self.buf = buf
        self.endian = endian
        self.u8 = np.frombuffer(buf, np.uint8)
        self.nw = n // 8
        self.w = np.frombuffer(buf, "<u8", count=self.nw)

    def window(self, start: np.ndarray, nbytes: int) -> np.ndarray:
        """Bytes [start, start + nbytes) of every row as a (rows, >= nbytes) uint8 array: rows of a strided
        view of the buffer (one at each byte offset), taken by index, a short copy per row. Bytes past the
        end of the file read as zero."""
        width = (nbytes + 7) // 8 * 8
        rows = as_strided(self.u8, shape=(max(self.size - width + 1, 0), width), strides=(1, 1), writeable=False)
        inside = start <= self.size - width
        if inside.all():
            return rows[start]
        out = np.zeros((len(start), width), np.uint8)
        out[inside] = rows[start[inside]]
        base = max(0, self.size - width)  # rows reaching past the end: from a zero-padded copy of it
        padded = np.concatenate([self.u8[base:], np.zeros(width, np.uint8)])
        ends = as_strided(padded, shape=(len(padded) - width + 1, width), strides=(1, 1), writeable=False)
        out[~inside] = ends[np.minimum(start[~inside] - base, len(padded) - width)]
        return out

    def u32(self, x: np.ndarray) -> np.ndarray:
        """The 4-byte unsigned integer (in the capture's byte order) at each offset `x` (x + 4 <= size)."""
        if not len(x):
            return np.zeros(0, np.int64)
        i = x >> 3
        sh = ((x & 7) * 8).astype(np.uint64)
        last = self.nw - 1
        if self.nw == 0 or int(i.max()) + 1 > last:
            w = self.window(x, 4)
            return np.ascontiguousarray(w[:, :4]).view(self.endian + "u4")[:, 0].astype(np.int64)
        w = self.w
        val = (w[i] >> sh) | ((w[i + 1] << (np.uint64(63) - sh)) << np.uint64(1))
        val &= np.uint64(0xFFFFFFFF)
        if self.endian == ">":
            val = val.byteswap() >> np.uint64(32)
        return val.astype(np.int64)


# ---------------------------------------------------------------- pcap record index


def _walk_py(buf, off: int, stop: int, size: int, limit: int, endian: str, out: list[int]) -> tuple[int, str]:
    """Sequential walk from a known record start (used where a lockstep guess was wrong)."""
    unpack = struct.Struct(endian + "I").unpack_from
    while off < stop:
        if off + 16 > size:
            return off, "header"
        caplen = unpack(buf, off + 8)[0]
        if caplen > limit:
            return off, "damaged"
        if off + 16 + caplen > size:
            return off, "record"
        out.append(off)
        off += 16 + caplen
    return off, ""


def _sync_guesses(v: _Views, starts: np.ndarray, step: int, size: int, limit: int, sec0: int,
                  fracmax: int) -> np.ndarray:
    """For each guessed boundary, the first offset after it that looks like a record header whose
    successor does too (-1 if none in the window). Only a guess: the walk proves or refutes it.

    The window is searched in growing steps (SYNC_STEPS), each only for the guesses still without a header:
    most find one within a record's length. Cheap first test: captured and original lengths below 64 KiB,
    i.e. their two high bytes are zero."""
    k = len(starts)
    out = np.full(k, -1, np.int64)
    if k == 0 or int(starts[-1]) + SYNC_WINDOW + 32 > size:
        return out
    full = np.ndarray((k, SYNC_WINDOW + 16), np.uint8, buffer=v.buf, offset=int(starts[0]), strides=(step, 1))
    le = v.endian == "<"
    hi = (10, 11, 14, 15) if le else (8, 9, 12, 13)
    top = np.uint8(sec0 >> 24)  # and the seconds' top byte within 4 of the first record's
    at, frac_at = (3, 7) if le else (0, 4)
    todo = np.arange(k)
    lo = 0
    for upto in [*(s for s in SYNC_STEPS if s < SYNC_WINDOW), SYNC_WINDOW]:
        w = upto - lo
        rows = full[todo, lo:upto + 16]  # a copy of these rows' bytes [lo, upto + 16)
        z = rows[:, hi[0]:hi[0] + w] == 0
        for h in hi[1:]:
            z &= rows[:, h:h + w] == 0
        z &= (rows[:, at:at + w] - top + np.uint8(4)) <= np.uint8(8)
        z &= rows[:, frac_at:frac_at + w] <= np.uint8(fracmax >> 24)
        r, c = np.nonzero(z)
        del rows, z
        if len(r):
            pos = starts[todo[r]] + lo + c
            ok = np.ones(len(pos), bool)
            for depth in range(3):  # this header and the next two must look right
                inside = pos + 16 <= size
                pc = np.minimum(pos, size - 16)
                sec, frac, cap, orig = (v.u32(pc + i) for i in (0, 4, 8, 12))
                ok &= (pos == size) & (depth > 0) | inside & (np.abs(sec - sec0) < (1 << 26)) & (frac < fracmax) \
                    & (cap <= limit) & (orig >= cap)
                pos = np.where(pos == size, pos, pos + 16 + cap)
            r = r[ok]
            found, first = np.unique(r, return_index=True)  # rows in order; each row's first hit
            out[todo[found]] = starts[todo[found]] + lo + c[ok][first]
            todo = np.delete(todo, found)
        if not len(todo):
            break
        lo = upto
    return out


def _lockstep(v: _Views, starts: np.ndarray, stops: np.ndarray, size: int, limit: int):
    """Walk every chain from its start until it reaches its stop; returns (offsets, chain ids, landing,
    status) with status 0 landed, 1 header cut short, 2 damaged length, 3 record cut short."""
    k = len(starts)
    landing = starts.copy()
    status = np.zeros(k, np.int8)
    ids = np.flatnonzero(starts < stops)
    off = starts[ids]
    offs, chains = [], []
    while len(ids):
        hdr = off + 16 <= size
        cap = v.u32(np.minimum(off + 8, size - 4))
        nxt = off + 16 + cap
        bad = ~hdr | (cap > limit) | (nxt > size)
        if bad.any():
            b = ids[bad]
            status[b] = np.where(~hdr[bad], 1, np.where(cap[bad] > limit, 2, 3))
            landing[b] = off[bad]
            good = ~bad
            ids, off, nxt = ids[good], off[good], nxt[good]
        offs.append(off)
        chains.append(ids)
        done = nxt >= stops[ids]
        if done.any():
            landing[ids[done]] = nxt[done]
            keep = ~done
            ids, off = ids[keep], nxt[keep]
        else:
            off = nxt
    if offs:
        return np.concatenate(offs), np.concatenate(chains), landing, status
    return np.zeros(0, np.int64), np.zeros(0, np.int64), landing, status


def _pcap_region(v: _Views, buf, start: int, end: int, size: int, limit: int, endian: str, sec0: int,
                 fracmax: int) -> tuple[np.ndarray, int, str]:
    """Offsets of the records whose headers begin in [start, end), in file order, exactly as a
    sequential walk finds them; the offset after the last one; why reading stopped ('' if it did not)."""
    span = end - start
    k = int(max(1, min(SEGMENTS, span // MIN_SEGMENT)))
    step = span // k
    bounds = start + np.arange(k, dtype=np.int64) * step
    guesses = np.concatenate([[start], _sync_guesses(v, bounds[1:], step, size, limit, sec0, fracmax)])
    valid = guesses >= 0
    gstarts = guesses[valid]
    gstops = np.concatenate([gstarts[1:], [end]])
    gstops = np.maximum(gstops, gstarts)
    offs, chains, landing, status = _lockstep(v, gstarts, gstops, size, limit)
    accepted = np.zeros(len(gstarts), bool)
    extra: list[int] = []
    true = start
    for j in range(len(gstarts)):
        g, stop = int(gstarts[j]), int(gstops[j])
        if g == true:
            accepted[j] = True
            if status[j]:
                true = int(landing[j])
                return _merge(offs, chains, accepted, extra), true, ("", "header", "damaged", "record")[status[j]]
            true = int(landing[j])
        elif true < stop:  # the guess was wrong: walk this stretch the slow, sure way
            true, why = _walk_py(buf, true, stop, size, limit, endian, extra)
            if why:
                return _merge(offs, chains, accepted, extra), true, why
    if true < end:  # only when every later guess was refuted
        true, why = _walk_py(buf, true, end, size, limit, endian, extra)
        if why:
            return _merge(offs, chains, accepted, extra), true, why
    return _merge(offs, chains, accepted, extra), true, ""


def _merge(offs: np.ndarray, chains: np.ndarray, accepted: np.ndarray, extra: list[int]) -> np.ndarray:
    if extra:
        kept = offs[accepted[chains]] if len(offs) else offs
        return np.sort(np.concatenate([kept, np.asarray(extra, np.int64)]))
    sel = accepted[chains]
    offs, chains = offs[sel], chains[sel].astype(np.int16 if len(accepted) < 32768 else np.int64)
    return offs[np.argsort(chains, kind="stable")]  # radix sort: chains in order, each in walk order


# ---------------------------------------------------------------- header decoding


@dataclass
class _Cols:
    """Decoded packets of one batch as columns (frame order)."""

    frame: np.ndarray
    ts: np.ndarray
    fam: np.ndarray
    proto: np.ndarray
    shi: np.ndarray
    slo: np.ndarray
    dhi: np.ndarray
    dlo: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    flags: np.ndarray
    seq: np.ndarray
    length: np.ndarray
    ip_length: np.ndarray
    poff: np.ndarray  # payload offset in the file; -1: the payload is in `payloads` (decoded the slow way)
    plen: np.ndarray  # captured payload length
    payloads: dict[int, bytes] = field(default_factory=dict)

    def take(self, idx: np.ndarray) -> _Cols:
        names = [f for f in self.__dataclass_fields__ if f != "payloads"]
        return _Cols(*(getattr(self, f)[idx] for f in names), payloads=self.payloads)


def _shift_rows(a: np.ndarray, off: np.ndarray, width: int) -> np.ndarray:
    """Row r of the result is a[r, off[r]:off[r] + width]; a view when every row has the same offset."""
    lo, hi = (int(off.min()), int(off.max())) if len(off) else (0, 0)
    if lo == hi:
        return a[:, lo:lo + width]
    out = np.zeros((a.shape[0], width), np.uint8)
    for u in np.unique(off).tolist():
        m = off == u
        out[m] = a[m, u:u + width]
    return out


def _be(a: np.ndarray, c: int, n: int) -> np.ndarray:
    """Big-endian unsigned integer of n bytes at column c of every row, as int64 (uint64 for n=8)."""
    if n == 1:
        return a[:, c].astype(np.int64)
    if n == 2:
        return a[:, c].astype(np.int64) << 8 | a[:, c + 1]
    v = np.ascontiguousarray(a[:, c:c + n]).view(f">u{n}")[:, 0]
    return v.astype(np.uint64) if n == 8 else v.astype(np.int64)


def _decode(v: _Views, buf, decoder: Decoder, frame: np.ndarray, ts: np.ndarray, data: np.ndarray,
            caplen: np.ndarray, lt: np.ndarray, fw: np.ndarray) -> _Cols:
    """Decode a batch of frames: the common cases with numpy (`fw`: each frame's first FRAME_WINDOW bytes,
    one row per frame), the rest with the per-frame Decoder."""
    n = len(frame)
    l3 = np.zeros(n, np.int64)  # offset of the IP header in the frame
    ver = np.zeros(n, np.int64)  # 0: not for the fast path
    eth = lt == 1
    if eth.any():
        et = np.where(eth & (caplen >= 14), _be(fw, 12, 2), 0)
        off = np.full(n, 14, np.int64)
        for tag_at in (16, 20):  # up to two VLAN tags (802.1Q, QinQ)
            tag = eth & ((et == 0x8100) | (et == 0x88A8) | (et == 0x9100)) & (caplen >= off + 4)
            et = np.where(tag, _be(fw, tag_at, 2), et)
            off = np.where(tag, off + 4, off)
        ok = eth & (caplen >= 14)
        ver = np.where(ok & (et == 0x0800), 4, np.where(ok & (et == 0x86DD), 6, ver))
        l3 = np.where(eth, off, l3)
    for linktype, at, hl in ((113, 14, 16), (276, 0, 20)):  # Linux cooked v1/v2
        m = lt == linktype
        if m.any():
            et = np.where(m & (caplen >= hl), _be(fw, at, 2), 0)
            ver = np.where(m & (et == 0x0800), 4, np.where(m & (et == 0x86DD), 6, ver))
            l3 = np.where(m, hl, l3)
    raw = (lt == 101) | (lt == 12) | (lt == 14)
    if raw.any():
        nib = np.where(raw & (caplen >= 1), fw[:, 0] >> 4, 0)
        ver = np.where(raw & ((nib == 4) | (nib == 6)), nib, ver)
        l3 = np.where(raw, 0, l3)
    ver = np.where(lt == 228, 4, np.where(lt == 229, 6, ver))
    l3 = np.where((lt == 228) | (lt == 229), 0, l3)
    l3 = np.where(ver > 0, l3, 0)

    ip = _shift_rows(fw, l3, FRAME_WINDOW - 22)
    avail = caplen - l3
    b0 = ip[:, 0].astype(np.int64)
    ihl = (b0 & 15) * 4
    total = _be(ip, 2, 2)
    v4 = (ver == 4) & (avail >= 20) & (b0 >> 4 == 4) & (ihl >= 20) & (total >= ihl) & (avail >= ihl) \
        & ((_be(ip, 6, 2) & 0x3FFF) == 0)
    plen6 = _be(ip, 4, 2)
    v6 = (ver == 6) & (avail >= 40) & (b0 >> 4 == 6)
    proto = np.where(v4, ip[:, 9], ip[:, 6]).astype(np.int64)
    hdr = np.where(v4, ihl, 40)
    end = np.where(v4, np.minimum(avail, total), np.minimum(avail, 40 + plen6))
    wire = np.where(v4, total - ihl, plen6)
    ok = (v4 | v6) & (l3 + hdr + 14 <= FRAME_WINDOW) & ((proto == 6) | (proto == 17))
    hdr = np.where(ok, hdr, 20)
    tp = _shift_rows(fw, l3 + hdr, 14)
    tcp = ok & (proto == 6) & (end >= hdr + 20)
    udp = ok & (proto == 17) & (end >= hdr + 8)
    sport = _be(tp, 0, 2)
    dport = _be(tp, 2, 2)
    doff = (tp[:, 12].astype(np.int64) >> 4) * 4
    tcp &= (doff >= 20) & (wire - doff >= 0)
    udp &= (sport != GTP_U_PORT) & (dport != GTP_U_PORT)
    fast = tcp | udp
    every = fast.all()
    idx = np.flatnonzero(fast)
    slow = np.flatnonzero(~fast)

    def pick(x: np.ndarray) -> np.ndarray:
        return x if every else x[idx]

    t = pick(tcp)
    hdr_, end_, wire_, l3_ = pick(hdr), pick(end), pick(wire), pick(l3)
    doff_ = pick(doff)
    tp_ = pick(tp)
    ip_ = pick(ip)
    ulen_ = _be(tp_, 4, 2)
    u_len = np.where((ulen_ >= 8) & (ulen_ <= wire_), ulen_ - 8, wire_ - 8)
    length = np.where(t, wire_ - doff_, u_len)
    pstart = np.where(t, hdr_ + doff_, hdr_ + 8)
    pend = np.where(t, end_, np.minimum(end_, hdr_ + 8 + u_len))
    plen = np.maximum(pend - pstart, 0)
    is4 = pick(v4)
    zero = np.zeros(len(idx), np.uint64)
    if is4.all():
        src_hi, dst_hi = zero, zero
        src_lo, dst_lo = _be(ip_, 12, 4).astype(np.uint64), _be(ip_, 16, 4).astype(np.uint64)
    else:
        src_lo = np.where(is4, _be(ip_, 12, 4).astype(np.uint64), _be(ip_, 16, 8))
        dst_lo = np.where(is4, _be(ip_, 16, 4).astype(np.uint64), _be(ip_, 32, 8))
        src_hi = np.where(is4, zero, _be(ip_, 8, 8))
        dst_hi = np.where(is4, zero, _be(ip_, 24, 8))
    flags = np.where(t, tp_[:, 13], 0).astype(np.int64)
    seq = np.where(t, _be(tp_, 4, 4), 0)
    ip_length = np.where(is4, hdr_ + wire_, wire_ + 40)
    cols = _Cols(pick(frame), pick(ts), np.where(is4, 4, 6), pick(proto), src_hi, src_lo, dst_hi, dst_lo,
                 pick(sport), pick(dport), flags, seq, length, ip_length, pick(data) + l3_ + pstart, plen)
    if len(slow):
        cols = _merge_slow(cols, _slow(buf, decoder, frame[slow], ts[slow], data[slow], caplen[slow], lt[slow]))
    decoder.stats.decoded += len(idx)
    return cols


def _slow(buf, decoder: Decoder, frame, ts, data, caplen, lt) -> list[Packet]:
    out = []
    decode = decoder.decode
    for fr, t, d, c, link in zip(frame.tolist(), ts.tolist(), data.tolist(), caplen.tolist(), lt.tolist()):
        pkt = decode(fr, t, link, buf[d:d + c])
        if pkt is not None:
            out.append(pkt)
    return out


def _merge_slow(cols: _Cols, pkts: list[Packet]) -> _Cols:
    if not pkts:
        return cols

    def hi(a: bytes) -> int:
        return int.from_bytes(a[:8], "big") if len(a) == 16 else 0

    def lo(a: bytes) -> int:
        return int.from_bytes(a[8:] if len(a) == 16 else a, "big")

    extra = _Cols(
        np.array([p.frame for p in pkts], np.int64), np.array([p.ts for p in pkts], np.float64),
        np.array([4 if len(p.src) == 4 else 6 for p in pkts], np.int64),
        np.array([p.proto for p in pkts], np.int64),
        np.array([hi(p.src) for p in pkts], np.uint64), np.array([lo(p.src) for p in pkts], np.uint64),
        np.array([hi(p.dst) for p in pkts], np.uint64), np.array([lo(p.dst) for p in pkts], np.uint64),
        np.array([p.sport for p in pkts], np.int64), np.array([p.dport for p in pkts], np.int64),
        np.array([p.flags for p in pkts], np.int64), np.array([p.seq for p in pkts], np.int64),
        np.array([p.length for p in pkts], np.int64), np.array([p.ip_length for p in pkts], np.int64),
        np.full(len(pkts), -1, np.int64), np.array([len(p.payload) for p in pkts], np.int64))
    names = [f for f in cols.__dataclass_fields__ if f != "payloads"]
    merged = _Cols(*(np.concatenate([getattr(cols, f), getattr(extra, f)]) for f in names),
                   payloads={**cols.payloads, **{p.frame: p.payload for p in pkts}})
    return merged.take(np.argsort(merged.frame, kind="stable"))


# ---------------------------------------------------------------- flow aggregation


class _Grow:
    """Per-flow columns that grow as flows appear."""

    SPEC: ClassVar[dict] = {
        "fam": (np.int64, 0), "proto": (np.int64, 0), "ahi": (np.uint64, 0), "alo": (np.uint64, 0),
        "ap": (np.int64, 0), "bhi": (np.uint64, 0), "blo": (np.uint64, 0), "bp": (np.int64, 0),
        "first_frame": (np.int64, 0), "first_ts": (np.float64, np.inf), "last_ts": (np.float64, -np.inf),
        "syn_from": (np.int64, -1), "syn_ts": (np.float64, 0.0), "synack_from": (np.int64, -1),
        "synack_ts": (np.float64, 0.0), "cap": (np.int64, 0), "bytecap": (np.int64, 0),
    }
    PAIRS = ("pkts", "bytes", "ip_bytes", "sampled", "sampled_bytes")

    def __init__(self) -> None:
        self.n = 0
        self.cols = {k: np.full(1024, fill, dt) for k, (dt, fill) in self.SPEC.items()}
        self.cols.update({k: np.zeros(2048, np.int64) for k in self.PAIRS})

    def trim(self) -> None:
        """Drop the room kept for flows to come (up to half of every column): reading is over."""
        n = self.n
        self.cols = {k: col[:2 * n if k in self.PAIRS else n].copy() for k, col in self.cols.items()}

    def grow(self, n: int) -> None:
        cap = len(self.cols["fam"])
        if n > cap:
            new = max(n, cap * 2)
            for k, (dt, fill) in self.SPEC.items():
                col = np.full(new, fill, dt)
                col[:cap] = self.cols[k]
                self.cols[k] = col
            for k in self.PAIRS:
                col = np.zeros(new * 2, np.int64)
                col[:cap * 2] = self.cols[k]
                self.cols[k] = col
        self.n = n


def _joined(chunks: list[list[np.ndarray]], k: int) -> np.ndarray:
    """Sample column `k` of `chunks` as one array (of its dtype when empty); its chunks are let go."""
    parts, chunks[k] = chunks[k], []
    return np.concatenate(parts) if parts else np.zeros(0, SAMPLE_DTYPES[k])


def _mix(*words: np.ndarray) -> np.ndarray:
    h = np.zeros(len(words[0]), np.uint64)
    with np.errstate(over="ignore"):
        for w in words:
            h = (h ^ w.astype(np.uint64)) * _M1
            h ^= h >> np.uint64(31)
            h *= _M2
            h ^= h >> np.uint64(29)
    return h


def _ranks(groups: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For payloads sorted by (flow, side) group, in frame order within each: how many of the group come
    before each one, and how many bytes they hold (what sampling caps are checked against)."""
    start = np.ones(len(groups), bool)
    start[1:] = groups[1:] != groups[:-1]
    starts = np.flatnonzero(start)
    grp = np.cumsum(start) - 1
    cs = np.cumsum(lengths)
    return np.arange(len(groups)) - starts[grp], cs - lengths - (cs[starts] - lengths[starts])[grp]


class FastTable:
    """Columnar flow aggregation with the exact semantics of `FlowTable.add`."""

    def __init__(self, capture: str) -> None:
        self.capture = capture
        self.g = _Grow()
        self.known_h = np.zeros(0, np.uint64)
        self.known_gid = np.zeros(0, np.int64)
        # kept samples, a list of chunks per column: gid, frame, ts, side, seq, src, length
        self.samples: list[list[np.ndarray]] = [[] for _ in SAMPLE_DTYPES]
        self.payload_list: list[bytes] = []
        self.sampled_total = 0
        self.unsampled = 0
        self.tick: Callable[[int], None] = lambda _offset: None

    def add(self, c: _Cols) -> None:
        if not len(c.frame):
            return
        src_lt = (c.shi < c.dhi) | ((c.shi == c.dhi) & ((c.slo < c.dlo) | ((c.slo == c.dlo) & (c.sport <= c.dport))))
        side = np.where(src_lt, 0, 1)
        ahi, alo, ap = np.where(src_lt, c.shi, c.dhi), np.where(src_lt, c.slo, c.dlo), np.where(src_lt, c.sport, c.dport)
        bhi, blo, bp = np.where(src_lt, c.dhi, c.shi), np.where(src_lt, c.dlo, c.slo), np.where(src_lt, c.dport, c.sport)
        tag = (c.fam << 8 | c.proto).astype(np.uint64)
        ports = (ap << 16 | bp).astype(np.uint64)
        h = _mix(tag, ahi, alo, ports, bhi, blo)
        uh, first, inv = np.unique(h, return_index=True, return_inverse=True)
        words = (tag, ahi, alo, ports, bhi, blo)
        for w in words:  # every packet's key equals its group's first key: no collision inside the batch
            if not np.array_equal(w, w[first][inv]):
                raise _Collision
        gid_u = self._known(uh)
        found = gid_u >= 0
        new = np.flatnonzero(~found)
        g = self.g
        if len(new):
            new = new[np.argsort(first[new], kind="stable")]  # ids in order of first appearance
            base = g.n
            gid_u[new] = base + np.arange(len(new))
            g.grow(base + len(new))
            fi = first[new]
            ids = gid_u[new]
            cols = g.cols
            for name, col in (("fam", c.fam), ("proto", c.proto), ("ahi", ahi), ("alo", alo), ("ap", ap),
                              ("bhi", bhi), ("blo", blo), ("bp", bp), ("first_frame", c.frame)):
                cols[name][ids] = col[fi]
            busy = np.maximum(_BUSY[ap[fi]], _BUSY[bp[fi]])
            cols["cap"][ids] = np.where(busy > 0, busy, SAMPLE_PACKETS)
            cols["bytecap"][ids] = np.where(busy > 0, BUSY_SAMPLE_BYTES, SAMPLE_BYTES)
            self._remember(uh[new], gid_u[new])
        old = np.flatnonzero(found)
        if len(old):
            fi = first[old]
            self._same_keys(gid_u[old], dict(zip(KEY, (c.fam[fi], c.proto[fi], ahi[fi], alo[fi], ap[fi], bhi[fi],
                                                       blo[fi], bp[fi]), strict=True)))
        gid = gid_u[inv]
        self._count(gid, side, c)

    def _known(self, h: np.ndarray) -> np.ndarray:
        """The flow id of each key hash seen before, -1 for the new ones."""
        pos = np.searchsorted(self.known_h, h)
        posc = np.minimum(pos, max(len(self.known_h) - 1, 0))
        found = (pos < len(self.known_h)) & (self.known_h[posc] == h) if len(self.known_h) else np.zeros(len(h), bool)
        return np.where(found, self.known_gid[posc] if len(self.known_gid) else 0, -1)

    def _remember(self, h: np.ndarray, gid: np.ndarray) -> None:
        """Add new flows' key hashes and ids to the sorted lookup."""
        both = np.concatenate([self.known_h, h])
        order = np.argsort(both, kind="stable")
        self.known_h, self.known_gid = both[order], np.concatenate([self.known_gid, gid])[order]

    def _same_keys(self, ids: np.ndarray, key: dict[str, np.ndarray]) -> None:
        """A known hash must carry the same key as the flow it names (else: a hash collision)."""
        if any(not np.array_equal(self.g.cols[name][ids], key[name]) for name in KEY):
            raise _Collision

    def _count(self, gid: np.ndarray, side: np.ndarray, c: _Cols) -> None:
        cols = self.g.cols
        n2 = self.g.n * 2
        g2 = gid * 2 + side
        cols["pkts"][:n2] += np.bincount(g2, minlength=n2)
        cols["bytes"][:n2] += np.bincount(g2, weights=c.length, minlength=n2).astype(np.int64)
        cols["ip_bytes"][:n2] += np.bincount(g2, weights=c.ip_length, minlength=n2).astype(np.int64)
        np.minimum.at(cols["first_ts"], gid, c.ts)
        np.maximum.at(cols["last_ts"], gid, c.ts)
        syn = (c.proto == 6) & ((c.flags & TCP_SYN) != 0)
        if syn.any():
            for name, mask in (("syn", syn & ((c.flags & TCP_ACK) == 0)), ("synack", syn & ((c.flags & TCP_ACK) != 0))):
                sel = np.flatnonzero(mask)
                ug, fi = np.unique(gid[sel], return_index=True)
                unset = cols[name + "_from"][ug] < 0
                ug, fi = ug[unset], sel[fi[unset]]
                cols[name + "_from"][ug] = side[fi]
                cols[name + "_ts"][ug] = c.ts[fi]
        has = np.flatnonzero(c.plen > 0)
        if not len(has):
            return
        order = has[np.argsort(g2[has], kind="stable")]
        sg = g2[order]
        rank, excl = _ranks(sg, c.plen[order])
        sampled, sbytes = cols["sampled"], cols["sampled_bytes"]
        left = SAMPLE_BYTES_TOTAL - self.sampled_total
        if left <= 0:  # past the capture's sample budget: candidates are only counted
            self.unsampled += int(np.count_nonzero((sampled[sg] < cols["cap"][sg >> 1])
                                                   & (sbytes[sg] < cols["bytecap"][sg >> 1])))
            return
        keep = (sampled[sg] + rank < cols["cap"][sg >> 1]) & (sbytes[sg] + excl < cols["bytecap"][sg >> 1])
        if not keep.any():
            return
        kept = np.sort(order[keep])  # frame order: the budget is spent first come, first served
        klen = c.plen[kept]
        refused = np.flatnonzero(np.cumsum(klen) - klen >= left)
        if len(refused):
            cut = kept[refused[0]]
            kept = kept[:refused[0]]
            klen = klen[:refused[0]]
        k2 = g2[kept]
        sampled[:n2] += np.bincount(k2, minlength=n2)
        sbytes[:n2] += np.bincount(k2, weights=klen, minlength=n2).astype(np.int64)
        self.sampled_total += int(klen.sum())
        if len(refused):  # after the budget ran out: payload packets their flow would still have kept
            late = has[has >= cut]
            lg = g2[late]
            self.unsampled += int(np.count_nonzero((sampled[lg] < cols["cap"][lg >> 1])
                                                   & (sbytes[lg] < cols["bytecap"][lg >> 1])))
        # payloads are kept as file offsets and read a batch of flows at a time (`batch_parts`): holding
        # them all took ~400 MB on a 100k-flow capture. Those decoded the slow way are kept as bytes
        # (their offset is -1 - index into `payload_list`).
        src = c.poff[kept].copy()
        slow = np.flatnonzero(src < 0)
        if len(slow):
            src[slow] = -1 - (len(self.payload_list) + np.arange(len(slow)))
            self.payload_list += [c.payloads[fr] for fr in c.frame[kept[slow]].tolist()]
        for chunks, col, dtype in zip(self.samples, (gid[kept], c.frame[kept], c.ts[kept], side[kept], c.seq[kept],
                                                    src, klen), SAMPLE_DTYPES, strict=True):
            chunks.append(col.astype(dtype))

    def absorb(self, other: FastTable, frames: int) -> bool:
        """Append `other`, the flows of the records that follow this table's (their frame numbers start
        after `frames`), exactly as if its packets had been added here in order; False, with nothing
        changed here, when that cannot be proven (a sample budget was reached). `other`'s samples are used up
        either way."""
        o = other.g
        n = o.n
        if other.unsampled or n == 0:
            return not other.unsampled
        h = np.empty(n, np.uint64)
        h[other.known_gid] = other.known_h
        gid = self._known(h)
        found = gid >= 0
        old = np.flatnonzero(found)
        self._same_keys(gid[old], {k: o.cols[k][old] for k in KEY})
        new = np.flatnonzero(~found)  # other's flow ids are in order of first appearance: so are these
        gid[new] = self.g.n + np.arange(len(new))
        # the samples this table would have kept: per flow and side, a prefix of those `other` kept. `other`'s
        # chunks are let go as each column is joined, and each temporary once used: on 100k flows these
        # arrays of ~500k samples set the reading's peak
        chunks, other.samples = other.samples, [[] for _ in SAMPLE_DTYPES]
        gcol, frame, ts, side, seq, src, length = (_joined(chunks, k) for k in range(len(SAMPLE_DTYPES)))
        g2 = gid[gcol] * 2 + side
        seen = np.where(found, gid, 0)  # this table's id of each flow it already has
        mine = np.flatnonzero(found[gcol])
        # room left per sample's flow and side: its caps less what this table already kept of it
        room = np.where(found, self.g.cols["cap"][seen], o.cols["cap"][:n])[gcol]
        room[mine] -= self.g.cols["sampled"][g2[mine]]
        byteroom = np.where(found, self.g.cols["bytecap"][seen], o.cols["bytecap"][:n])[gcol]
        byteroom[mine] -= self.g.cols["sampled_bytes"][g2[mine]]
        del seen, mine
        order = np.argsort(g2, kind="stable")
        rank, excl = _ranks(g2[order], length[order].astype(np.int64))
        fits = (rank < room[order]) & (excl < byteroom[order])
        del rank, excl, room, byteroom
        keep = np.zeros(len(g2), bool)
        keep[order] = fits
        del order, fits
        kept = np.flatnonzero(keep)  # frame order
        del keep
        kept_bytes = int(length[kept].sum())
        if self.sampled_total + kept_bytes > SAMPLE_BYTES_TOTAL:
            return False  # the budget is spent first come, first served: only a sequential read says how
        # counters: flows seen before add up, new ones are copied
        g = self.g
        g.grow(g.n + len(new))
        cols = g.cols
        ids, src_ids = gid[old], old
        for k in g.PAIRS[:3]:
            cols[k].reshape(-1, 2)[ids] += o.cols[k][:2 * n].reshape(n, 2)[src_ids]
        cols["first_ts"][ids] = np.minimum(cols["first_ts"][ids], o.cols["first_ts"][src_ids])
        cols["last_ts"][ids] = np.maximum(cols["last_ts"][ids], o.cols["last_ts"][src_ids])
        for k in ("syn", "synack"):
            take = (cols[k + "_from"][ids] < 0) & (o.cols[k + "_from"][src_ids] >= 0)
            cols[k + "_from"][ids[take]] = o.cols[k + "_from"][src_ids[take]]
            cols[k + "_ts"][ids[take]] = o.cols[k + "_ts"][src_ids[take]]
        for k in g.SPEC:
            cols[k][gid[new]] = o.cols[k][new] + (frames if k == "first_frame" else 0)
        for k in g.PAIRS[:3]:
            cols[k].reshape(-1, 2)[gid[new]] = o.cols[k][:2 * n].reshape(n, 2)[new]
        k2 = g2[kept]
        n2 = g.n * 2
        cols["sampled"][:n2] += np.bincount(k2, minlength=n2)
        cols["sampled_bytes"][:n2] += np.bincount(k2, weights=length[kept], minlength=n2).astype(np.int64)
        self.sampled_total += kept_bytes
        moved = src[kept]
        del src
        moved[moved < 0] -= len(self.payload_list)  # payloads other decoded the slow way: indices into the joined list
        self.payload_list += other.payload_list
        # each column's kept samples made, and its whole column let go, in turn
        self.samples[0].append(gid[gcol[kept]])
        del gcol
        self.samples[1].append(frame[kept] + frames)
        del frame
        self.samples[2].append(ts[kept])
        del ts
        self.samples[3].append(side[kept])
        del side
        self.samples[4].append(seq[kept])
        del seq
        self.samples[5].append(moved)
        self.samples[6].append(length[kept])
        self._remember(h[new], gid[new])
        return True

    def host(self) -> bytes | None:
        """`FlowTable.local_host` of the whole capture: the address in the most flows, of equally busy ones
        the first seen (each flow's first end before its second), as Counter.most_common(1) picks."""
        n, cols = self.g.n, self.g.cols
        if not n:
            return None
        fam = np.repeat(cols["fam"][:n].astype(np.uint64), 2)
        v4 = fam == 4
        hi = np.where(v4, np.uint64(0), np.stack([cols["ahi"][:n], cols["bhi"][:n]], axis=1).reshape(-1))
        lo = np.stack([cols["alo"][:n], cols["blo"][:n]], axis=1).reshape(-1)  # a0, b0, a1, b1, ...
        order = np.lexsort((lo, hi, fam))
        key = np.stack([fam, hi, lo], axis=1)[order]
        starts = np.flatnonzero(np.concatenate([[True], (key[1:] != key[:-1]).any(axis=1)]))
        counts = np.diff(np.append(starts, len(key)))
        firsts = np.minimum.reduceat(order, starts)  # where each address first appears
        busiest = np.flatnonzero(counts == counts.max())
        f, h, low = key[starts[busiest[np.argmin(firsts[busiest])]]].tolist()
        return low.to_bytes(4, "big") if f == 4 else h.to_bytes(8, "big") + low.to_bytes(8, "big")

    def _sorted_samples(self) -> list[np.ndarray]:
        """All kept samples as columns (gid, frame, ts, side, seq, src, length), by flow then frame. Each column
        is joined and sorted in turn while its chunks are let go: the copies of one column at a time."""
        chunks, self.samples = self.samples, [[] for _ in SAMPLE_DTYPES]
        if not chunks[0]:
            return [np.zeros(0, dtype) for dtype in SAMPLE_DTYPES]
        order = np.lexsort((np.concatenate(chunks[1]), np.concatenate(chunks[0])))
        parts = []
        for k in range(len(chunks)):
            parts.append(np.concatenate(chunks[k])[order])
            chunks[k] = []
        return parts

    def _columns(self, ids: np.ndarray, sampled: list[np.ndarray], bounds: np.ndarray, fd: int) -> FlowColumns:
        """The flows `ids` (in that order) as FlowColumns, with their samples' payloads read from `fd`."""
        g = self.g
        lo, counts = bounds[ids], bounds[ids + 1] - bounds[ids]
        idx = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        pairs = {k: g.cols[k][:2 * g.n].reshape(g.n, 2)[ids] for k in g.PAIRS}
        return FlowColumns(**{k: g.cols[k][ids] for k in g.SPEC}, **pairs, counts=counts,
                           frame=sampled[1][idx], ts=sampled[2][idx], side=sampled[3][idx], seq=sampled[4][idx],
                           payload=self._payloads(sampled[5][idx], sampled[6][idx], fd))

    def _payloads(self, src: np.ndarray, length: np.ndarray, fd: int) -> list[bytes]:
        """Payload bytes of samples: file ranges read with pread, nearby ones in one read of at most about
        READ_RUN bytes (never through the map, whose touched pages would count against this process);
        slow-path ones from `payload_list`."""
        out: list[bytes] = [b""] * len(src)
        for i in np.flatnonzero(src < 0).tolist():
            out[i] = self.payload_list[-1 - int(src[i])]
        file = np.flatnonzero(src >= 0)
        if not len(file):
            return out
        file = file[np.argsort(src[file], kind="stable")]
        starts, ends = src[file], src[file] + length[file]
        new = np.ones(len(file), bool)
        new[1:] = starts[1:] - np.maximum.accumulate(ends)[:-1] > READ_GAP
        first = np.flatnonzero(new)
        piece = (starts - starts[first][np.cumsum(new) - 1]) // READ_RUN  # long runs are cut in pieces
        new[1:] |= piece[1:] != piece[:-1]
        first = np.flatnonzero(new)
        last = np.append(first[1:], len(file))
        run_end = np.maximum.reduceat(ends, first)
        for a, z, stop in zip(first.tolist(), last.tolist(), run_end.tolist(), strict=True):
            base = int(starts[a])
            data = os.pread(fd, stop - base, base)
            for i, o, n in zip(file[a:z].tolist(), starts[a:z].tolist(), length[file[a:z]].tolist(), strict=True):
                out[i] = data[o - base:o - base + n]
        return out

    def batch_parts(self, fd: int) -> list[Callable[[], FlowColumns]]:
        """The flows in order of first frame, as functions that each build FlowColumns of at most BATCH_FLOWS
        flows and about BATCH_SAMPLE_BYTES of sampled payload: only one batch's payloads are in memory at a
        time, and a process can build only its share."""
        max_flows, max_bytes = BATCH_FLOWS, BATCH_SAMPLE_BYTES
        n = self.g.n
        if n == 0:
            return []
        sampled = self._sorted_samples()
        bounds = np.searchsorted(sampled[0], np.arange(n + 1))
        order = np.argsort(self.g.cols["first_frame"][:n], kind="stable")
        weight = self.g.cols["sampled_bytes"][:2 * n].reshape(n, 2).sum(1)[order]
        parts = []
        start = 0
        while start < n:
            stop = min(n, start + max_flows)
            over = np.flatnonzero(np.cumsum(weight[start:stop]) > max_bytes)
            if len(over):
                stop = start + max(1, int(over[0]))
            parts.append(partial(self._columns, order[start:stop], sampled, bounds, fd))
            start = stop
        return parts

    def table(self, fd: int) -> FlowTable:
        """The equivalent `FlowTable`: Flow objects with their samples (all payloads in memory)."""
        if self.g.n == 0:
            table = FlowTable(self.capture)
            table.sampled_total, table.unsampled = self.sampled_total, self.unsampled
            return table
        sampled = self._sorted_samples()
        bounds = np.searchsorted(sampled[0], np.arange(self.g.n + 1))
        table = self._columns(np.arange(self.g.n), sampled, bounds, fd).to_table(self.capture)
        table.sampled_total, table.unsampled = self.sampled_total, self.unsampled
        return table


# ---------------------------------------------------------------- driver


def read_table(path: str | Path, stats: CaptureStats | None = None, capture_id: str | None = None,
               progress: Callable[[str, int, int, bool], None] | None = None, parallel: bool = False,
               ahead: ReadAhead | None = None) -> FlowTable:
    """Read one capture into a `FlowTable` (the same one `FlowTable.add` over `read_capture` builds).
    `progress(path, frames read, bytes read, False)` is called after every batch."""
    batches = read_flows(path, stats, capture_id, progress, whole=True, parallel=parallel, ahead=ahead)
    try:
        return next(iter(batches))
    finally:
        batches.close()


@dataclass
class FlowBatches:
    """A capture's flows, handed on as FlowColumns of a bounded number of flows and sampled bytes in order of
    first frame (so one batch's payloads are in memory at a time), with what concerns the whole capture."""

    unsampled: int  # payload packets refused by the capture's sample budget
    host: bytes | None  # `FlowTable.local_host` of the whole capture
    parts: list[Callable[[], FlowColumns]]  # each builds one batch when called (`whole`: a FlowTable)
    close: Callable[[], None] = lambda: None

    def __iter__(self) -> Iterator[FlowColumns]:
        return (part() for part in self.parts)


def read_flows(path: str | Path, stats: CaptureStats | None = None, capture_id: str | None = None,
               progress: Callable[[str, int, int, bool], None] | None = None, whole: bool = False,
               parallel: bool = False, ahead: ReadAhead | None = None) -> FlowBatches:
    """Read one capture; its flows come in batches (`whole`: one FlowTable of every flow). Close it.
    `parallel`: a big pcap is read by two processes when there are two cores (`ahead`: the second may have
    started already, see `read_ahead`)."""
    path = Path(path)
    stats = stats if stats is not None else CaptureStats(str(path))
    snapshot = (stats.format, list(stats.link_types), stats.frames, stats.decoded, stats.fragments,
                stats.skipped.copy(), list(stats.warnings))
    try:
        fast, handle = _read(path, stats, capture_id or str(path), progress, parallel, ahead)
    except _Collision:  # astronomically rare: redo it exactly, packet by packet
        from analyzer.capture import read_capture

        (stats.format, stats.link_types, stats.frames, stats.decoded, stats.fragments, stats.skipped,
         stats.warnings) = snapshot
        table = FlowTable(capture_id or str(path))
        for pkt in read_capture(path, stats):
            table.add(pkt)
        part = (lambda: table) if whole else partial(FlowColumns.from_table, table)
        return FlowBatches(table.unsampled, table.local_host(), [part])
    fd = handle.fileno()
    parts = [partial(fast.table, fd)] if whole else fast.batch_parts(fd)
    give_back()  # the reader's freed temporaries
    return FlowBatches(fast.unsampled, fast.host(), parts, handle.close)


def _ticker(stats: CaptureStats, progress) -> Callable[[int], None]:
    if progress is None:
        return lambda _offset: None
    return lambda offset: progress(stats.path, stats.frames, offset, False)


@dataclass
class ReadAhead:
    """A big pcap whose second part a forked process has been reading since `read_ahead` (before the rest of
    the audit was even imported); `read_flows` of the same file reads the first part and joins the two."""

    path: Path
    capture_id: str
    identity: tuple[int, int, int, int]  # (device, inode, size, modification time) of the file read
    buf: mmap.mmap
    handle: object
    at: int  # where the second part starts
    worker: forked.Worker

    def claim(self, path: Path, capture_id: str) -> tuple[mmap.mmap, object, int, forked.Worker] | None:
        """(map, file, split offset, worker) for reading `path` as `capture_id`, now that one's own (the
        caller closes them), or None, the read-ahead ended, when it read another file or name."""
        if (self.worker.pid is not None and path == self.path and capture_id == self.capture_id
                and _identity(path) == self.identity):
            claimed = self.buf, self.handle, self.at, self.worker
            self.handle = None
            return claimed
        self.close()
        return None

    def close(self) -> None:
        """End the forked reader and close the file, unless `claim` handed them on."""
        self.worker.close()
        if self.handle is not None:
            self.buf.close()
            self.handle.close()
            self.handle = None


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


READ_AHEAD_LEAD = 320 << 20  # bytes more than half for a read-ahead's process: it starts ~0.35 s earlier and reads
# 0.35-1 GB a second (flow-heavy captures are slower), so it finishes about when this process does


def read_ahead(path: Path) -> ReadAhead | None:
    """Start reading the second part of a big pcap in a forked process now, while this process still imports
    pandas and the rest of the audit (~0.35 s in which the second core would idle), with READ_AHEAD_LEAD
    bytes more than half for that head start. None when the file is not a big uncompressed pcap or there is
    one core: it is then read as usual, and any problem with it is reported then."""
    identity = _identity(path)
    if identity is None or identity[2] < PARALLEL_BYTES or not forked.can_fork():
        return None
    try:
        with open(path, "rb") as fh:
            if fh.read(4) not in PCAP_MAGICS:  # pcapng, gzip (not decompressed twice), or no capture
                return None
        stats = CaptureStats(str(path))
        buf, handle = _open_bytes(path, stats)
    except (OSError, CallauditError):
        return None
    capture_id = stats.path  # the name `capture_columns` reads it under
    try:
        fmt = pcap_header(buf, stats)
        at = _split_point(_Views(buf, fmt[0]), buf, *fmt, lead=READ_AHEAD_LEAD)
        worker = _rest_worker(buf, fmt, at, capture_id, capture_id) if at > 0 else None
    except Exception:  # noqa: BLE001 - only a head start: the usual reader meets the problem again and reports it
        worker = None
    if worker is None:
        buf.close()
        handle.close()
        return None
    return ReadAhead(path, capture_id, identity, buf, handle, at, worker)


def _read(path: Path, stats: CaptureStats, capture_id: str, progress,
          parallel: bool = False, ahead: ReadAhead | None = None) -> tuple[FastTable, object]:
    """The capture read into a FastTable, and the open file its sample payloads are read from later.
    `parallel`: a big pcap is read by two processes, a part each (`ahead`: the second already started, which
    implies `parallel`)."""
    claimed = ahead.claim(path, capture_id) if ahead is not None else None
    buf, handle = claimed[:2] if claimed else _open_bytes(path, stats)
    views = None
    try:
        magic = bytes(buf[:4])
        fast = FastTable(capture_id)
        fast.tick = _ticker(stats, progress)
        decoder = Decoder(stats)
        if magic == b"\x0a\x0d\x0d\x0a":
            stats.format += "pcapng"
            views = _Views(buf)
            _read_pcapng(buf, views, stats, decoder, fast)
        elif magic in PCAP_MAGICS:
            stats.format += "pcap"
            fmt = pcap_header(buf, stats)  # endian, link type, record length limit, time divisor
            views = _Views(buf, fmt[0])
            if claimed:
                _read_halves(buf, views, stats, decoder, fast, fmt, claimed[2], claimed[3])
            elif (at := _split_point(views, buf, *fmt) if parallel else -1) > 0:
                _read_halves(buf, views, stats, decoder, fast, fmt, at)
            else:
                _read_pcap(buf, views, stats, decoder, fast, *fmt)
        else:
            raise CallauditError(f"{path}: not a pcap or pcapng file (magic {magic.hex() or 'none'})")
    except BaseException:
        handle.close()
        if claimed:
            claimed[3].close()
        raise
    finally:
        del views
        if isinstance(buf, mmap.mmap):
            try:
                buf.close()
            except BufferError:  # an error's traceback still holds views of it: let that error through
                pass
    fast.g.trim()  # held through dissection: on 300k flows the spare room was ~30 MB
    return fast, handle


def _release(buf, start: int, end: int) -> None:
    """Drop already-decoded pages from this process's memory (they stay in the page cache)."""
    if isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        start -= start % mmap.PAGESIZE
        end -= end % mmap.PAGESIZE
        if end > start:
            buf.madvise(mmap.MADV_DONTNEED, start, end - start)


def _read_pcap(buf, v: _Views, stats: CaptureStats, decoder: Decoder, fast: FastTable, endian: str,
               linktype: int, limit: int, div: float, start: int = 24, stop: int | None = None) -> int:
    """Decode the records from offset `start` (numbered after the `stats.frames` already read) up to the
    first whose header begins at or after `stop` (default: the end). Returns where reading stopped:
    after the last record, or -1 when a damaged or cut record ended the capture."""
    size = len(buf)
    stop = size if stop is None else stop
    fracmax = 1_000_000_000 if div == 1e9 else 1_000_000
    sec0 = struct.unpack_from(endian + "I", buf, 24)[0] if size >= 28 else 0
    off = start
    while off < stop:
        end = min(stop, off + REGION_BYTES)
        offs, nxt, why = _pcap_region(v, buf, off, end, size, limit, endian, sec0, fracmax)
        for s in range(0, len(offs), BATCH):
            rec = offs[s:s + BATCH]
            w = v.window(rec, 16 + FRAME_WINDOW)
            hdr = np.ascontiguousarray(w[:, :12]).view(endian + "u4")
            sec, frac, caplen = hdr[:, 0], hdr[:, 1], hdr[:, 2]
            frames = stats.frames + 1 + np.arange(len(rec), dtype=np.int64)
            stats.frames += len(rec)
            lt = np.full(len(rec), linktype, np.int64)
            ts = sec.astype(np.float64) + frac.astype(np.float64) / div
            fast.add(_decode(v, buf, decoder, frames, ts, rec + 16, caplen.astype(np.int64), lt, w[:, 16:]))
            fast.tick(int(rec[-1]))
        _release(buf, off, nxt)
        if why:
            stats.frames += 1
            frame = stats.frames
            if why == "header":
                stats.skip("truncated-record")
                stats.warnings.append(f"record header cut short at offset {nxt} (frame {frame})")
            elif why == "damaged":
                caplen = struct.unpack_from(endian + "I", buf, nxt + 8)[0]
                stats.skip("damaged-record")
                stats.warnings.append(f"record at offset {nxt} (frame {frame}) claims {caplen} bytes: "
                                      f"file damaged, reading stopped")
            else:
                caplen = struct.unpack_from(endian + "I", buf, nxt + 8)[0]
                stats.skip("truncated-record")
                stats.warnings.append(f"last record (frame {frame}) cut short: {size - nxt - 16} of {caplen} bytes")
            return -1
        off = nxt
    return off


def _split_point(v: _Views, buf, endian: str, _linktype: int, limit: int, div: float, lead: int = 0) -> int:
    """A likely record boundary where a second process may start reading a big pcap (-1: read it in one): near
    the middle, or `lead` bytes before it when the second process starts that much earlier (`read_ahead`).
    Only a guess: `_read_halves` keeps the second part only if the walk from the start lands on it exactly."""
    size = len(buf)
    if size < PARALLEL_BYTES or not isinstance(buf, mmap.mmap) or not forked.can_fork():
        return -1
    sec0 = struct.unpack_from(endian + "I", buf, 24)[0]
    fracmax = 1_000_000_000 if div == 1e9 else 1_000_000
    guess = max(size // 4, (size - lead) // 2)
    return int(_sync_guesses(v, np.array([guess], np.int64), SYNC_WINDOW + 16, size, limit, sec0, fracmax)[0])


def _read_rest(buf, fmt: tuple, at: int, capture: str, name: str) -> tuple[FastTable | None, CaptureStats]:
    """The records from offset `at` on, as a table and counts of their own (the second process's part); no
    table, and reading given up, once this part alone passes the sample budget: `absorb` would refuse it, and
    the first process reads on by itself."""
    stats, fast = CaptureStats(name), FastTable(capture)

    def tick(_offset: int) -> None:
        if fast.unsampled:
            raise _PastBudget

    fast.tick = tick
    try:
        _read_pcap(buf, _Views(buf, fmt[0]), stats, Decoder(stats), fast, *fmt, start=at)
    except _PastBudget:
        return None, stats
    fast.tick = None  # a function: not sent back (progress is the first process's to report)
    fast.g.trim()  # smaller to send, and to hold while the first process joins it
    return fast, stats


class _PastBudget(Exception):
    """The second process's part reached the sample budget by itself (`_read_rest`)."""


def _rest_worker(buf, fmt: tuple, at: int, capture: str, name: str) -> forked.Worker:
    """A forked process reading the records from offset `at` on (`_read_rest`), starting now."""
    return forked.Worker(lambda job: _read_rest(*job), [(buf, fmt, at, capture, name)])


def _read_halves(buf, v: _Views, stats: CaptureStats, decoder: Decoder, fast: FastTable, fmt: tuple,
                 at: int, worker: forked.Worker | None = None) -> None:
    """The records before offset `at` here and those from `at` on in a forked process (`worker`, when one
    already reads them), at the same time. The second part is joined when the walk from the start lands on
    `at` exactly and nothing crosses the split (IP fragments, a sample budget); otherwise this process reads
    on from where it landed, so the result is always the one-process result."""
    if worker is None:
        worker = _rest_worker(buf, fmt, at, fast.capture, stats.path)
    try:
        landed = _read_pcap(buf, v, stats, decoder, fast, *fmt, stop=at)
        if landed == -1:
            return  # the capture is damaged before `at`: reading stopped there, as it does in one process
        try:
            other, other_stats = worker.result()
        except Exception:  # noqa: BLE001 - the other process failed (killed, out of memory): read on here
            other, other_stats = None, None
    finally:
        worker.close()
    warnings = [_renumbered(w, stats.frames) for w in other_stats.warnings] if other_stats else [None]
    if landed == at and other is not None and not stats.fragments and not other_stats.fragments \
            and None not in warnings and fast.absorb(other, stats.frames):
        stats.frames += other_stats.frames
        stats.decoded += other_stats.decoded
        stats.skipped.update(other_stats.skipped)
        stats.warnings += warnings
        fast.tick(len(buf))  # the progress shown so far was this process's half
        return
    del other  # not held while reading on (on 300k flows, ~100 MB)
    give_back()
    _read_pcap(buf, v, stats, decoder, fast, *fmt, start=landed)


def _renumbered(warning: str, frames: int) -> str | None:
    """A warning of the second half with its frame number counted from the start of the capture (None if
    it names no single frame)."""
    found = re.findall(r"\(frame (\d+)\)", warning)
    if len(found) != 1:
        return None
    return warning.replace(f"(frame {found[0]})", f"(frame {int(found[0]) + frames})")


def _read_pcapng(buf, v: _Views, stats: CaptureStats, decoder: Decoder, fast: FastTable) -> None:
    index = pcapng_index(buf, stats)
    released = 0
    while True:
        rows = [r for _, r in zip(range(BATCH), index)]
        if not rows:
            return
        frame, ts, lt, data, caplen = (np.array(c) for c in zip(*rows))
        data = data.astype(np.int64)
        fw = v.window(data, FRAME_WINDOW)
        fast.add(_decode(v, buf, decoder, frame.astype(np.int64), ts.astype(np.float64), data,
                         caplen.astype(np.int64), lt.astype(np.int64), fw))
        fast.tick(int(data[-1]))
        top = int(data[-1])
        if top - released > REGION_BYTES:
            _release(buf, released, top)
            released = top
