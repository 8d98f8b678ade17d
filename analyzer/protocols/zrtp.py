"""ZRTP (RFC 6189): SRTP keys agreed by Diffie-Hellman inside the media path itself.

A ZRTP packet looks like RTP with version 0: 0x10 first, a sequence number, the magic cookie "ZRTP" at offset 4,
the source id, then one message (preamble 0x505a, length in words, an 8-character type) and a CRC. The frames
of Commit/DHPart1/DHPart2/Confirm are the key exchange; Hello names the client and the algorithms offered.
"""

from __future__ import annotations

import struct

from analyzer.protocols import Facts, FlowView

MAGIC = b"ZRTP"
PREAMBLE = b"PZ"  # 0x505a
KEY_MESSAGES = frozenset({"Commit", "DHPart1", "DHPart2", "Confirm1", "Confirm2"})
KNOWN = KEY_MESSAGES | {"Hello", "HelloACK", "Conf2ACK", "Error", "ErrorACK", "GoClear", "ClearACK", "SASrelay",
                        "RelayACK", "Ping", "PingACK"}


def message(payload: bytes) -> tuple[str, bytes] | None:
    """(message type, message body) of a ZRTP packet, or None."""
    if len(payload) < 28 or payload[0] != 0x10 or payload[4:8] != MAGIC or payload[12:14] != PREAMBLE:
        return None
    words = struct.unpack_from("!H", payload, 14)[0]
    mtype = payload[16:24].decode("ascii", errors="replace").strip()
    if mtype not in KNOWN or 12 + 4 * words > len(payload):
        return None
    return mtype, payload[12:12 + 4 * words]


def hello(body: bytes) -> dict:
    """Version, client id and key agreement types offered (RFC 6189 §5.2)."""
    if len(body) < 80:
        raise ValueError("short Hello")
    version = body[12:16].decode("ascii", errors="backslashreplace")
    client = body[16:32].decode("ascii", errors="backslashreplace").strip(" \0")
    counts = struct.unpack_from("!I", body, 76)[0]  # 0|S|M|P, unused, then hc cc ac kc sc (4 bits each)
    hc, cc, ac, kc = (counts >> 16) & 0xF, (counts >> 12) & 0xF, (counts >> 8) & 0xF, (counts >> 4) & 0xF
    off = 80 + 4 * (hc + cc + ac)
    agreements = [body[off + 4 * i:off + 4 * i + 4].decode("ascii", errors="backslashreplace").strip()
                  for i in range(kc) if off + 4 * i + 4 <= len(body)]
    return {"version": version, "client": client, "key_agreements": agreements}


def commit(body: bytes) -> dict:
    """The algorithms the initiator chose (RFC 6189 §5.4)."""
    if len(body) < 76:
        raise ValueError("short Commit")
    names = [body[off:off + 4].decode("ascii", errors="backslashreplace").strip() for off in range(56, 76, 4)]
    return dict(zip(("hash", "cipher", "auth_tag", "key_agreement", "sas"), names))


ROLE_HINTS = False  # `client_hint` never decides a role here: ZRTP Hello messages go both ways


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    return None


PROTOS = frozenset({"udp"})  # `inspect` learns nothing from flows of other transports


def inspect(view: FlowView, facts: Facts) -> None:
    if view.proto != "udp":
        return
    frames: list[int] = []
    seen: list[str] = []
    for s in view.samples:
        try:
            hit = message(s.payload)
            if hit is None:
                continue
            mtype, body = hit
            if mtype not in seen:
                seen.append(mtype)
            if mtype == "Hello":
                facts.details.setdefault("zrtp_hello", hello(body))
            elif mtype == "Commit":
                facts.details.setdefault("zrtp_commit", commit(body))
            if mtype in KEY_MESSAGES:
                frames.append(s.frame)
        except (ValueError, struct.error, IndexError):
            facts.malformed += 1
    if not seen:
        return
    facts.add_service("zrtp")
    facts.details["zrtp_messages"] = seen
    if frames:
        facts.mark_key_exchange("zrtp", frames)
        facts.findings.append(f"ZRTP key agreement ({', '.join(m for m in seen if m in KEY_MESSAGES)}) "
                              f"in frames {', '.join(map(str, frames[:6]))}")
