"""Zoom media over UDP: the server (SFU) encapsulation on 8801-8810, peer-to-peer media, Zoom's classic STUN.

Layout as measured by Michel et al., "Enabling Passive Measurement of Zoom Performance in Production
Networks" (IMC 2022): server flows carry an outer header (type 0x05, sequence, direction byte 0 to Zoom / 4
from Zoom) before an inner media header whose first byte is the media type; P2P flows start with the inner
header. The RTP header sits at a per-type offset inside it. Zoom changed these headers between client versions
(older clients put the inner header right after the 0x05 byte), so an offset is only believed when an RTP
(or RTCP) header is valid there and its SSRC recurs across packets of the flow.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter

from analyzer.protocols import Facts, FlowView
from analyzer.protocols.rtp import parse_rtcp, parse_rtp

SERVER_PORTS = range(8801, 8811)
STUN_PORTS = frozenset({3478, 3479})
HINT_PORTS = STUN_PORTS | frozenset(SERVER_PORTS)  # `client_hint` says nothing on other ports
OUTER_MEDIA = 0x05
INNER_OFFSETS = (8, 1)  # where the inner header starts after the 0x05 byte: current clients, older clients
MEDIA = {0x0F: "audio", 0x10: "video", 0x0D: "screen", 0x1E: "screen", 0x21: "rtcp", 0x22: "rtcp", 0x23: "rtcp"}
RTCP_OFFSET = 16
SCAN = range(12, 40)  # where to look for the RTP header when the documented offset does not hold one
MIN_PACKETS = 3  # packets with a recurring SSRC before a P2P flow is called Zoom
STUN_ATTR_COUNTER, STUN_ATTR_MAPPED = 0x0101, 0x0103  # Zoom's classic-STUN request / response attributes
MAGIC_COOKIE = b"\x21\x12\xa4\x42"


def rtp_offsets(inner: bytes) -> tuple[int, ...]:
    """Documented RTP offsets inside the inner header, per media type (zoom-analysis, IMC 2022)."""
    kind = inner[0]
    if kind == 0x0F:
        return (19,)
    if kind == 0x10:
        return (24, 20) if len(inner) > 20 and inner[20] == 0x02 else (20, 24)
    if kind == 0x1E:
        return (20,)
    if kind == 0x0D:
        return (27,) if len(inner) > 7 and inner[7] == 0x1E else ()
    return ()


def parse_media(inner: bytes) -> tuple[str, int, int] | None:
    """(media type, ssrc, payload type) of one inner Zoom media header, or None when no RTP/RTCP confirms it."""
    kind = MEDIA.get(inner[0]) if inner else None
    if kind is None:
        return None
    if kind == "rtcp":
        parsed = parse_rtcp(inner[RTCP_OFFSET:])
        if parsed is None and len(inner) >= RTCP_OFFSET + 8 and inner[RTCP_OFFSET] >> 6 == 2 \
                and inner[RTCP_OFFSET + 1] in (200, 201):
            parsed = ([(inner[RTCP_OFFSET + 1], struct.unpack_from("!I", inner, RTCP_OFFSET + 4)[0])], "srtcp")
        return (kind, parsed[0][0][1], parsed[0][0][0]) if parsed else None
    for off in rtp_offsets(inner):
        hdr = parse_rtp(inner[off:])
        if hdr is not None:
            return kind, hdr[3], hdr[0]
    for off in SCAN:  # a newer client moved the header: take it only if the SSRC check later agrees
        hdr = parse_rtp(inner[off:])
        if hdr is not None and inner[off] & 0x0F == 0:  # no CSRCs: Zoom never mixes at the client
            return kind, hdr[3], hdr[0]
    return None


def server_inner(payload: bytes) -> tuple[bytes, int | None] | None:
    """(inner header, direction byte or None) of a server-encapsulated datagram."""
    if len(payload) < 9 or payload[0] != OUTER_MEDIA:
        return None
    for off in INNER_OFFSETS:
        inner = payload[off:]
        if inner and inner[0] in MEDIA and parse_media(inner) is not None:
            return inner, (payload[7] if off == 8 else None)
    return None


def stun(payload: bytes) -> tuple[str, str | None] | None:
    """("request" | "response", mapped address) for Zoom's classic STUN (RFC 3489 look, no magic cookie)."""
    if len(payload) < 24 or payload[4:8] == MAGIC_COOKIE:
        return None
    mtype, length = struct.unpack_from("!HH", payload)
    if mtype not in (1, 2) or 20 + length != len(payload):
        return None
    atype, alen = struct.unpack_from("!HH", payload, 20)
    if mtype == 1 and atype == STUN_ATTR_COUNTER:
        return "request", None
    if mtype == 2 and atype == STUN_ATTR_MAPPED and alen == 8 and len(payload) >= 32 and payload[25] == 1:
        port = struct.unpack_from("!H", payload, 26)[0]
        return "response", f"{ipaddress.IPv4Address(payload[28:32])}:{port}"
    return None


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    if (sport in STUN_PORTS or dport in STUN_PORTS) and (hit := stun(payload)):
        return hit[0] == "request"
    if (sport in SERVER_PORTS or dport in SERVER_PORTS) and len(payload) > 8 and payload[0] == OUTER_MEDIA \
            and payload[7] in (0, 4) and payload[8] in MEDIA:
        return payload[7] == 0  # direction byte: 0 to Zoom, 4 from Zoom
    return None


PROTOS = frozenset({"udp"})  # `inspect` learns nothing from flows of other transports


def inspect(view: FlowView, facts: Facts) -> None:
    if view.proto != "udp":
        return
    try:
        if view.orig_p in STUN_PORTS or view.resp_p in STUN_PORTS:
            _stun(view, facts)
        _media(view, facts)
    except (struct.error, IndexError, ValueError):
        facts.malformed += 1


def _stun(view: FlowView, facts: Facts) -> None:
    seen: Counter = Counter()
    frames: list[int] = []
    for s in view.samples:
        hit = stun(s.payload)
        if hit is None:
            continue
        seen[hit[0]] += 1
        frames.append(s.frame)
        if hit[1]:
            facts.details.setdefault("zoom_mapped_address", hit[1])
    if seen:
        facts.add_service("stun")
        facts.details["zoom_stun"] = dict(seen)
        facts.findings.append(f"Zoom classic-STUN exchange (frames {', '.join(map(str, frames[:4]))})")


def handshake(view: FlowView) -> list[int]:
    """Frames of the session set-up that opens a server flow: a token the other side echoes back.

    Type 0x01 from the client is answered by 0x02 carrying the same 16 bytes at offset 3; 0x03/0x04 pairs echo
    bytes 1-12. Random traffic does not echo 12-16 bytes across directions.
    """
    frames: list[int] = []
    sent: dict[tuple[int, bytes], tuple[bool, int]] = {}
    for s in view.samples:
        p = s.payload
        if len(p) < 13 or p[0] not in (1, 2, 3, 4):
            continue
        token = p[3:19] if p[0] in (1, 2) and len(p) >= 19 else p[1:12]
        pair = {1: 2, 2: 1, 3: 4, 4: 3}[p[0]]
        other = sent.get((pair, token))
        if other is not None and other[0] != s.from_orig:
            frames += [other[1], s.frame]
        sent.setdefault((p[0], token), (s.from_orig, s.frame))
    return sorted(set(frames))[:8]


def _media(view: FlowView, facts: Facts) -> None:
    server = view.resp_p in SERVER_PORTS or view.orig_p in SERVER_PORTS
    found: list[tuple[str, int, int, bool, int]] = []  # (media, ssrc, pt, from_orig, frame)
    outer = 0
    for s in view.samples:
        if server and s.payload[:1] == bytes([OUTER_MEDIA]):
            outer += 1
            hit = server_inner(s.payload)
            media = parse_media(hit[0]) if hit else None
        else:
            media = parse_media(s.payload)  # P2P: inner header first (a server flow may do this too)
        if media is not None:
            found.append((*media, s.from_orig, s.frame))
    shake = handshake(view) if server else []
    if not found and not shake:  # nearly every flow: nothing below would confirm anything
        return
    ssrcs = Counter(m[1] for m in found)
    # an SSRC seen once may be an accident of bytes; an RTCP length walk that ends exactly is not, in a flow
    # that opened with Zoom's own handshake
    confirmed = [m for m in found if ssrcs[m[1]] >= 2 or (shake and m[0] == "rtcp")]
    if not shake and (not confirmed or (not server and len(confirmed) < MIN_PACKETS)):
        return
    facts.add_service("zoom")
    d = facts.details
    d["zoom_encapsulation"] = "server" if server else "p2p"
    if shake:
        d["zoom_handshake_frames"] = shake
        d["zoom_outer_packets"] = outer
    if confirmed:
        d["zoom_media"] = dict(Counter(m[0] for m in confirmed))
        d["zoom_ssrcs"] = sorted({m[1] for m in confirmed})
    streams: dict[tuple[int, bool], dict] = {}
    for media, ssrc, pt, from_orig, frame in confirmed:
        if media == "rtcp":
            continue
        st = streams.setdefault((ssrc, from_orig), {"ssrc": ssrc, "pt": pt, "packets": 0, "media": media,
                                                     "direction": "orig" if from_orig else "resp",
                                                     "first_frame": frame})
        st["packets"] += 1
    if streams:
        d.setdefault("rtp_streams", sorted(streams.values(), key=lambda x: x["first_frame"]))
    first = min([m[4] for m in confirmed] + shake)
    facts.findings.append(f"Zoom {d['zoom_encapsulation']} encapsulation from frame {first}")
