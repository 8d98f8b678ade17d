"""RTP and RTCP (RFC 3550) over UDP, and RTP over TCP with RFC 4571 length framing.

A single datagram proves little (any byte 0x80 looks like RTP), so a flow counts as RTP only when several
sampled packets agree: version 2, a payload type outside the RTCP range, the same SSRC, and sequence numbers
that advance in small steps. RTCP is recognised by walking a compound packet's length fields, which must
land exactly on the datagram's end; SRTCP (RFC 3711) leaves an E-flag + index trailer and an auth tag after
the first packet instead. Payloads of SRTP and RTP look alike, so "srtp" is said only with evidence: a
DTLS handshake multiplexed on the same 5-tuple (RFC 5764/7983), or an SRTCP trailer.
"""

from __future__ import annotations

import struct
from collections import Counter
from itertools import pairwise

from analyzer.protocols import Facts, FlowView

MIN_PACKETS = 3  # packets of one SSRC needed to call a flow RTP
MAX_SEQ_STEP = 64  # reordering/loss tolerated between two sampled packets of a stream
RTCP_TYPES = range(192, 224)  # RFC 5761 §4: PT 64-95 with the marker bit; 200-207 are assigned today
RTCP_NAMES = {200: "sr", 201: "rr", 202: "sdes", 203: "bye", 204: "app", 205: "rtpfb", 206: "psfb", 207: "xr"}
MAX_COMPOUND = 32  # RTCP packets walked in one datagram
SRTCP_TAGS = (10, 4, 16)  # auth tag lengths after the 4-byte E+index word (HMAC-SHA1-80/32, GCM)
TCP_FRAMES = 64  # RFC 4571 frames walked per direction


def parse_rtp(buf: bytes) -> tuple[int, int, int, int, int] | None:
    """(payload type, sequence, timestamp, ssrc, header length) of an RTP header, or None."""
    if len(buf) < 12 or buf[0] >> 6 != 2:
        return None
    pt = buf[1] & 0x7F
    if 64 <= pt <= 95:  # would collide with RTCP 192-223 (RFC 5761): not RTP
        return None
    cc = buf[0] & 0x0F
    hlen = 12 + 4 * cc
    if buf[0] & 0x10:  # header extension: 4-byte header then `length` words
        if len(buf) < hlen + 4:
            return None
        hlen += 4 + 4 * struct.unpack_from("!H", buf, hlen + 2)[0]
    if hlen > len(buf):
        return None
    if buf[0] & 0x20 and (len(buf) == hlen or buf[-1] == 0 or buf[-1] > len(buf) - hlen):
        return None  # padding count must fit in the payload
    _, _, seq, ts, ssrc = struct.unpack_from("!BBHII", buf)
    return pt, seq, ts, ssrc, hlen


def parse_rtcp(buf: bytes) -> tuple[list[tuple[int, int]], str] | None:
    """([(packet type, sender ssrc)], "rtcp" | "srtcp") for a compound RTCP datagram, or None.

    Plain RTCP: every packet is version 2 with an RTCP type and the lengths end exactly at the datagram's end.
    SRTCP: the first packet is readable, the rest is ciphertext, then the E flag + index and the auth tag.
    """
    if len(buf) < 8 or buf[0] >> 6 != 2 or buf[1] not in (200, 201):
        return None
    out: list[tuple[int, int]] = []
    off = 0
    while off + 4 <= len(buf) and len(out) < MAX_COMPOUND:
        if buf[off] >> 6 != 2 or buf[off + 1] not in RTCP_TYPES:
            break
        size = 4 * (struct.unpack_from("!H", buf, off + 2)[0] + 1)
        if off + size > len(buf):
            break
        ssrc = struct.unpack_from("!I", buf, off + 4)[0] if size >= 8 else 0
        out.append((buf[off + 1], ssrc))
        off += size
        if off == len(buf):
            return out, "rtcp"
    # SRTCP: after the compound (first packet clear, the rest ciphertext of the same length) comes the E flag
    # with a 31-bit index that counts up from zero, then the auth tag
    first_len = 4 * (struct.unpack_from("!H", buf, 2)[0] + 1)
    for tag in SRTCP_TAGS:
        idx = len(buf) - tag - 4
        if out and idx >= first_len and idx % 4 == 0 and buf[idx] == 0x80 and buf[idx + 1] == 0:
            return out[:1], "srtcp"
    return None


ROLE_HINTS = False  # `client_hint` never decides a role here: media is symmetric: roles come from signalling, ports or the capture host


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    return None  # media is symmetric: roles come from signalling, ports or the capture host


def _streams(packets: list[tuple[int, bool, bytes]]) -> dict[tuple[int, bool], dict]:
    """Group RTP-looking packets by (ssrc, direction) and keep the groups whose sequence numbers advance."""
    groups: dict[tuple[int, bool], list[tuple[int, int, int]]] = {}
    for frame, from_orig, data in packets:
        hdr = parse_rtp(data)
        if hdr is not None:
            groups.setdefault((hdr[3], from_orig), []).append((frame, hdr[0], hdr[1]))
    streams = {}
    for key, pkts in groups.items():
        if len(pkts) < MIN_PACKETS:
            continue
        pts = Counter(pt for _, pt, _ in pkts)
        steady = sum(1 for a, b in pairwise(pkts) if 0 < (b[2] - a[2]) % 65536 <= MAX_SEQ_STEP)
        if steady < (len(pkts) - 1) * 0.6:
            continue  # a constant 0x80 and four equal bytes with random sequence numbers: not a stream
        streams[key] = {"ssrc": key[0], "pt": pts.most_common(1)[0][0], "pts": sorted(pts),
                        "packets": len(pkts), "direction": "orig" if key[1] else "resp", "first_frame": pkts[0][0]}
    return streams


def _tcp_frames(view: FlowView) -> list[tuple[int, bool, bytes]]:
    """RFC 4571: each RTP/RTCP packet preceded by a 16-bit length, back to back in the stream."""
    from analyzer.protocols import frame_at

    out = []
    for from_orig in (True, False):
        data, marks = view.stream(from_orig)
        off = 0
        while off + 2 <= len(data) and len(out) < 2 * TCP_FRAMES:
            (n,) = struct.unpack_from("!H", data, off)
            if n < 8 or off + 2 + n > len(data) or data[off + 2] >> 6 != 2:
                break
            out.append((frame_at(marks, off), from_orig, data[off + 2:off + 2 + n]))
            off += 2 + n
    return out


def inspect(view: FlowView, facts: Facts) -> None:
    if view.proto == "udp":
        packets = [(s.frame, s.from_orig, s.payload) for s in view.samples if len(s.payload) >= 8
                   and s.payload[0] >> 6 == 2]
    else:
        first = next((s.payload for s in view.samples if s.payload), b"")
        if len(first) < 4 or first[2] >> 6 != 2:
            return
        packets = _tcp_frames(view)
    if not packets:
        return
    try:
        streams = _streams(packets)
        rtcp: dict[str, int] = {}  # a Counter's construction costs more than the rest on flows without RTCP
        srtcp_frames: list[int] = []
        rtcp_ssrcs: set[int] = set()
        for frame, _from_orig, data in packets:
            parsed = parse_rtcp(data)
            if parsed is None:
                continue
            kinds, how = parsed
            for pt, ssrc in kinds:
                name = RTCP_NAMES.get(pt, str(pt))
                rtcp[name] = rtcp.get(name, 0) + 1
                if pt in (200, 201):
                    rtcp_ssrcs.add(ssrc)
            if how == "srtcp":
                srtcp_frames.append(frame)
    except (struct.error, IndexError, ValueError):
        facts.malformed += 1
        return
    if streams:
        facts.details["rtp_streams"] = sorted(streams.values(), key=lambda s: s["first_frame"])
        if view.proto == "tcp":
            facts.details["rtp_framing"] = "rfc4571"
    if rtcp:
        facts.details["rtcp"] = dict(rtcp)
        facts.details["rtcp_ssrcs"] = sorted(rtcp_ssrcs)
    if not streams and not rtcp:
        return
    dtls = any(20 <= s.payload[0] <= 63 and s.payload[0] == 22 and s.payload[1] == 0xFE
               for s in view.samples if view.proto == "udp" and len(s.payload) > 13)
    encrypted = facts.key_exchange == "dtls-srtp" or dtls or bool(srtcp_frames)
    if srtcp_frames:
        facts.findings.append(f"SRTCP (encrypted RTCP with E flag and index) in frame {srtcp_frames[0]}")
    if streams:
        facts.add_service("srtp" if encrypted else "rtp")
    if rtcp:
        facts.add_service("srtcp" if srtcp_frames else "rtcp")
