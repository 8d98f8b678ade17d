"""Wireshark display filters that show exactly the packets behind a verdict.

A reader of a report should be able to check a claim in Wireshark by pasting one line: the flow's
conversation (both addresses and both ports), and the key-exchange frames by number.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Evidence:
    """The frames and filters for one flow; `flow_filter` is None only without a server address."""

    frames: list[int]
    key_frames: list[int]
    flow_filter: str | None
    frames_filter: str | None


def _present(value: object) -> bool:
    return value is not None and value is not pd.NA and not (isinstance(value, float) and pd.isna(value))


def _addr(value: object) -> str | None:
    """The address in Wireshark's spelling, or None when it is not an address (never echo odd text)."""
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def frames_filter(frames: list[int]) -> str | None:
    """`frame.number == 7`, or `frame.number in {38, 53, 55}` for several."""
    frames = sorted({int(f) for f in frames})
    if not frames:
        return None
    if len(frames) == 1:
        return f"frame.number == {frames[0]}"
    return "frame.number in {" + ", ".join(map(str, frames)) + "}"  # commas: Wireshark 4 needs them


def flow_filter(proto: str, orig_h: object, orig_p: object, resp_h: object, resp_p: object) -> str | None:
    """The conversation: both addresses and both ports (only the server side when the client's is unknown)."""
    server = _addr(resp_h)
    if server is None:
        return None
    ip = "ipv6" if ":" in server else "ip"
    client = _addr(orig_h) if _present(orig_p) else None
    if client is not None and (":" in client) != (":" in server):
        client = None
    l4 = proto if proto in ("tcp", "udp") else None
    parts = ([f"{ip}.addr=={client}"] if client else []) + [f"{ip}.addr=={server}"]
    if l4 and _present(resp_p):
        if client and int(orig_p) != int(resp_p):
            parts.append(f"{l4}.port=={int(orig_p)}")
        parts.append(f"{l4}.port=={int(resp_p)}")
    return " && ".join(parts)


def of_flow(row: object) -> Evidence:
    """Evidence for a flow row (a namedtuple or mapping with the FLOW_COLUMNS names)."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k, None)
    listed = [int(f) for f in (get("key_frames") or [])]  # for a revealed endpoint: the revealing frame
    key_frames = listed if _present(get("key_exchange")) else []
    first = get("first_frame")
    frames = sorted({*listed, *([int(first)] if _present(first) else [])})
    return Evidence(
        frames=frames,
        key_frames=key_frames,
        flow_filter=flow_filter(
            str(get("proto")), get("orig_h"), get("orig_p"), get("resp_h"), get("resp_p")
        ),
        frames_filter=frames_filter(key_frames or listed or frames),
    )
