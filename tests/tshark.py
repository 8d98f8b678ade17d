"""Helpers that ask tshark (when installed) what it sees, to cross-check callaudit on real captures."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path

TSHARK = shutil.which("tshark")
_CONV = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+\d+\s+\S+\s+(\d+)\s+\d+\s+\S+\s+(\d+)\s")


def _norm(addr: str) -> str:
    return str(ipaddress.ip_address(addr))


def conversations(path: Path) -> dict[tuple, int]:
    """{(proto, sorted endpoints): total frames} from `tshark -q -z conv,tcp -z conv,udp`."""
    out = subprocess.run([TSHARK, "-n", "-r", str(path), "-q", "-z", "conv,tcp", "-z", "conv,udp"],
                         capture_output=True, text=True, check=True).stdout
    convs: dict[tuple, int] = {}
    proto = None
    for line in out.splitlines():
        if line.startswith("TCP Conversations"):
            proto = "tcp"
        elif line.startswith("UDP Conversations"):
            proto = "udp"
        m = _CONV.match(line)
        if m and proto:
            a, b = (_norm(m[1]), int(m[2])), (_norm(m[3]), int(m[4]))
            key = (proto, *sorted([a, b]))  # tshark splits one 5-tuple when SDP sets up RTP: sum them
            convs[key] = convs.get(key, 0) + int(m[7])
    return convs


def sni(path: Path) -> dict[str, set[str]]:
    """{server address: SNI names} from the TLS ClientHellos tshark dissects over TCP and inside QUIC."""
    out = subprocess.run([TSHARK, "-n", "-r", str(path), "-Y", "tls.handshake.type == 1 && (tcp || quic)",
                          "-T", "fields", "-e", "ip.dst", "-e", "ipv6.dst",
                          "-e", "tls.handshake.extensions_server_name"],
                         capture_output=True, text=True, check=True).stdout
    names: dict[str, set[str]] = {}
    for line in out.splitlines():
        v4, v6, name = (line.split("\t") + ["", "", ""])[:3]
        dst = (v4 or v6).split(",")[-1]
        if dst and name:
            names.setdefault(_norm(dst), set()).add(name)
    return names
