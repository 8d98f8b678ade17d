"""RFC 7983 (updated by RFC 9443) demultiplexing: which protocol a packet on a shared 5-tuple carries.

WebRTC bundles STUN, DTLS, SRTP/SRTCP (and TURN ChannelData when relayed) on one port; the first byte
alone tells them apart, so every module that looks at such flows asks here instead of guessing.
"""

from __future__ import annotations

import struct

STUN, ZRTP, DTLS, TURN_CHANNEL, QUIC, RTP = "stun", "zrtp", "dtls", "turn-channel", "quic", "rtp"

# (lowest, highest first byte, kind): RFC 7983 §7 plus RFC 9443's QUIC ranges (64-79 stays TURN ChannelData).
RANGES = ((0, 3, STUN), (16, 19, ZRTP), (20, 63, DTLS), (64, 79, TURN_CHANNEL), (80, 127, QUIC),
          (128, 191, RTP), (192, 255, QUIC))
_TABLE: tuple[str | None, ...] = tuple(
    next((kind for lo, hi, kind in RANGES if lo <= b <= hi), None) for b in range(256))


def kind(payload: bytes) -> str | None:
    """The protocol RFC 7983 assigns to this packet's first byte, or None (4-15: unassigned, or empty)."""
    return _TABLE[payload[0]] if payload else None


def channel_data(payload: bytes, stream: bool = False) -> tuple[int, bytes, int] | None:
    """(channel number, application data, bytes used) of a TURN ChannelData message, or None.

    RFC 8656 §12.4: channel numbers 0x4000-0x4FFF (RFC 7983's 64-79), a 2-byte length; over TCP/TLS the
    message is padded to a multiple of 4 (`stream=True`), over UDP the datagram may end without padding.
    """
    if len(payload) < 4 or not 0x40 <= payload[0] <= 0x4F:
        return None
    channel, length = struct.unpack_from("!HH", payload)
    if 4 + length > len(payload):
        return None
    used = 4 + length + ((-length % 4) if stream else 0)
    return channel, payload[4:4 + length], min(used, len(payload))
