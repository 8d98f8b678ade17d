"""Seeded synthetic captures for the benchmarks: an hour-long video call and a busy network.

Written with `struct` (scapy would take minutes for a million packets). Protocol templates are realistic
enough for every stage to do its real work: Zoom-style UDP 8801 media with RTP inside, STUN binding
requests/responses, DNS queries and A answers, TLS over TCP with handshakes and a ClientHello carrying SNI.

    python benchmarks/gen_capture.py call /tmp/call.pcap            # 1M packets, 355 flows, ~700 MB
    python benchmarks/gen_capture.py busy /tmp/busy.pcap            # 1M packets, 100k flows
    python benchmarks/gen_capture.py call /tmp/big.pcap --repeat 14 # the call's records 14 times (~10 GB)
"""

from __future__ import annotations

import argparse
import heapq
import random
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

ETH_SRC, ETH_DST = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
REC = struct.Struct("<IIII")
IP4 = struct.Struct("!BBHHHBBH4s4s")
UDP = struct.Struct("!HHHH")
TCP = struct.Struct("!HHIIBBHHH")
RTP = struct.Struct("!BBHII")
T0 = 1_700_000_000.0

Event = tuple[float, int, bytes]  # (time, order, frame)


def ip4(a: str) -> bytes:
    return socket.inet_aton(a)


def udp_frame(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, vlan: int = 0) -> bytes:
    l4 = UDP.pack(sport, dport, 8 + len(payload), 0) + payload
    return _ip_frame(src, dst, 17, l4, vlan)


def tcp_frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
              payload: bytes = b"") -> bytes:
    l4 = TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0) + payload
    return _ip_frame(src, dst, 6, l4, 0)


def _ip_frame(src: bytes, dst: bytes, proto: int, l4: bytes, vlan: int) -> bytes:
    ip = IP4.pack(0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, src, dst) + l4
    if vlan:
        return ETH_DST + ETH_SRC + struct.pack("!HHH", 0x8100, vlan, 0x0800) + ip
    return ETH_DST + ETH_SRC + b"\x08\x00" + ip


def dns_query(qid: int, name: str) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)


def dns_answer(qid: int, name: str, addr: bytes) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q + struct.pack("!HH", 1, 1)
            + struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + addr)


def client_hello(sni: str, rnd: random.Random) -> bytes:
    host = sni.encode()
    sni_ext = struct.pack("!HHHBH", 0, len(host) + 5, len(host) + 3, 0, len(host)) + host
    exts = sni_ext + struct.pack("!HHH", 0x002B, 3, 0x0203)[:-1] + b"\x03\x04" + \
        struct.pack("!HHHH", 0x000A, 4, 2, 0x001D)
    body = (b"\x03\x03" + rnd.randbytes(32) + b"\x20" + rnd.randbytes(32) + struct.pack("!H", 4)
            + b"\x13\x01\x13\x02" + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def server_hello(rnd: random.Random) -> bytes:
    exts = struct.pack("!HHH", 0x002B, 2, 0x0304)
    body = (b"\x03\x03" + rnd.randbytes(32) + b"\x20" + rnd.randbytes(32) + b"\x13\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs


def stun(msg_type: int, tid: bytes, mapped: tuple[bytes, int] | None = None) -> bytes:
    attrs = b""
    if mapped:
        addr, port = mapped
        xaddr = bytes(a ^ b for a, b in zip(addr, b"\x21\x12\xa4\x42"))
        attrs = struct.pack("!HHBBH", 0x0020, 8, 0, 1, port ^ 0x2112) + xaddr
    return struct.pack("!HHI", msg_type, len(attrs), 0x2112A442) + tid + attrs


class Pool:
    """Random bytes reused as payload bodies: cheap to slice, not compressible to nothing."""

    def __init__(self, rnd: random.Random) -> None:
        self.data = rnd.randbytes(1 << 16)
        self.rnd = rnd

    def take(self, n: int) -> bytes:
        off = self.rnd.randrange(0, len(self.data) - n)
        return self.data[off:off + n]


def tls_flow(rnd: random.Random, pool: Pool, t: float, client: bytes, server: bytes, cport: int, sni: str,
             packets: int, span: float) -> list[Event]:
    """A TCP connection: 3-way handshake, ClientHello/ServerHello, application data, FIN."""
    cs, ss = rnd.getrandbits(32), rnd.getrandbits(32)
    out: list[Event] = []
    rtt = rnd.uniform(0.005, 0.12)

    def add(dt: float, from_client: bool, flags: int, payload: bytes = b"") -> None:
        nonlocal cs, ss
        if from_client:
            frame = tcp_frame(client, server, cport, 443, cs, ss, flags, payload)
            cs += len(payload) + (1 if flags & 0x03 else 0)
        else:
            frame = tcp_frame(server, client, 443, cport, ss, cs, flags, payload)
            ss += len(payload) + (1 if flags & 0x03 else 0)
        out.append((t + dt, 0, frame))

    add(0, True, 0x02)
    add(rtt, False, 0x12)
    add(rtt * 1.01, True, 0x10)
    add(rtt * 1.02, True, 0x18, client_hello(sni, rnd))
    add(rtt * 2.05, False, 0x18, server_hello(rnd) + b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03"
        + struct.pack("!H", 1200) + pool.take(1200))
    data = max(0, packets - 7)
    for i in range(data):
        from_client = rnd.random() < 0.4
        n = rnd.choice((90, 300, 1200, 1400)) if not from_client else rnd.choice((60, 120, 500))
        add(rtt * 3 + span * (i + 1) / (data + 1), from_client, 0x18,
            b"\x17\x03\x03" + struct.pack("!H", n - 5) + pool.take(n - 5))
    add(span + rtt * 4, True, 0x11)
    add(span + rtt * 5, False, 0x11)
    return out


def dns_flow(rnd: random.Random, t: float, client: bytes, resolver: bytes, name: str, addr: bytes,
             port: int) -> list[Event]:
    qid = rnd.getrandbits(16)
    return [(t, 0, udp_frame(client, resolver, port, 53, dns_query(qid, name))),
            (t + rnd.uniform(0.002, 0.04), 0, udp_frame(resolver, client, 53, port, dns_answer(qid, name, addr)))]


def stun_flow(rnd: random.Random, t: float, client: bytes, server: bytes, cport: int, sport: int,
              count: int, span: float) -> list[Event]:
    out: list[Event] = []
    for i in range(count):
        tid = rnd.randbytes(12)
        at = t + span * i / max(1, count)
        if i % 2 == 0:
            out.append((at, 0, udp_frame(client, server, cport, sport, stun(0x0001, tid))))
        else:
            out.append((at, 0, udp_frame(server, client, sport, cport, stun(0x0101, tid, (client, cport)))))
    return out


def call_events(seed: int, packets: int) -> Iterator[Event]:
    """A one-hour Zoom-like call: ~355 flows, most packets in a few 8801 media flows."""
    rnd = random.Random(seed)
    pool = Pool(rnd)
    me = ip4("192.168.1.23")
    resolver = ip4("192.168.1.1")
    zoom = [ip4(a) for a in ("109.94.160.99", "193.122.35.237", "144.195.52.3", "206.247.10.253",
                             "170.114.10.85", "134.224.90.111")]
    names = ["zoom.us", "www3.zoom.us", "log.zoom.us", "us04web.zoom.us", "zoomfr84zc.zoom.us",
             "zoomam104zc.zoom.us", "api.zoom.us", "marketplace.zoom.us", "file.zoom.us", "st1.zoom.us"]
    servers = [ip4(f"{a}.{b}.{c}.{d}") for a, b, c, d in
               [(52, 202, 62, 196), (52, 202, 62, 236), (213, 19, 144, 104), (213, 244, 140, 85),
                (162, 255, 38, 14), (35, 186, 224, 53), (104, 199, 65, 42), (3, 235, 69, 7),
                (13, 52, 5, 100), (144, 195, 36, 10)]]
    span = 3600.0
    small: list[Event] = []
    for i in range(300):  # DNS: one flow per query
        j = i % len(names)
        small += dns_flow(rnd, T0 + rnd.uniform(0, span), me, resolver, names[j], servers[j], 20000 + i)
    tls_total = packets // 25
    for i in range(40):
        srv = servers[i % len(servers)]
        small += tls_flow(rnd, pool, T0 + rnd.uniform(0, span * 0.9), me, srv, 50000 + i, names[i % len(names)],
                          tls_total // 40, rnd.uniform(10, span * 0.1))
    for i in range(9):
        small += stun_flow(rnd, T0 + rnd.uniform(0, 60), me, zoom[i % 6], 51000 + i, 3478, 100, 30.0)
    small.sort(key=lambda e: e[0])
    media = max(0, packets - len(small))
    yield from heapq.merge(_media(rnd, pool, me, zoom, media, span), small, key=lambda e: e[0])


def _media(rnd: random.Random, pool: Pool, me: bytes, zoom: list[bytes], count: int, span: float) -> Iterator[Event]:
    """Six 8801 media flows (audio, video, screen share, both directions): Zoom header + RTP."""
    flows = [(zoom[k % 6], 52000 + k, kind) for k, kind in enumerate(("audio", "video", "video", "screen",
                                                                         "audio", "video"))]
    seqs = [rnd.getrandbits(16) for _ in flows]
    ssrcs = [rnd.getrandbits(32) for _ in flows]
    weights = [0.1, 0.35, 0.3, 0.05, 0.05, 0.15]
    cum = [sum(weights[:i + 1]) for i in range(len(weights))]
    for n in range(count):
        r = rnd.random()
        k = next(i for i, c in enumerate(cum) if r <= c) if r <= cum[-1] else 0
        server, port, kind = flows[k]
        size = rnd.randrange(60, 220) if kind == "audio" else rnd.randrange(500, 950)
        seqs[k] = (seqs[k] + 1) & 0xFFFF
        rtp = RTP.pack(0x80, 112 if kind == "audio" else 98, seqs[k], (n * 90) & 0xFFFFFFFF, ssrcs[k])
        zh = struct.pack("!BHBI", 0x05, seqs[k], 0x10 if kind != "audio" else 0x0F, n) + b"\0" * 8
        payload = zh + rtp + pool.take(size)
        down = rnd.random() < 0.55
        frame = udp_frame(server, me, 8801, port, payload) if down else udp_frame(me, server, port, 8801, payload)
        yield (T0 + 1 + span * n / max(1, count), 0, frame)


def busy_events(seed: int, packets: int, flows: int = 100_000) -> Iterator[Event]:
    """A gateway capture: many hosts, 100k short flows (TLS over TCP, QUIC-like UDP 443, DNS, VLAN-tagged)."""
    rnd = random.Random(seed)
    pool = Pool(rnd)
    clients = [ip4(f"10.{a}.{b}.{c}") for a, b, c in ((i >> 12, (i >> 6) & 63, i & 63) for i in range(2000))]
    servers = [struct.pack("!I", rnd.randrange(0x0B000000, 0xDF000000)) for _ in range(20000)]
    resolver = ip4("10.255.0.53")
    per = packets / flows
    span = 600.0
    events: list[Event] = []
    budget = packets
    for f in range(flows):
        t = T0 + span * f / flows
        c, s = rnd.choice(clients), rnd.choice(servers)
        kind = f % 10
        if kind < 6:
            n = max(7, int(per * 1.3))
            evs = tls_flow(rnd, pool, t, c, s, 1024 + (f % 60000), f"h{f % 5000}.example.com", n, 2.0)
        elif kind < 9:
            n = max(2, int(per * 0.8))
            cp = 1024 + (f % 60000)
            vlan = 100 if kind == 8 else 0
            evs = [(t + i * 0.01, 0, udp_frame(c, s, cp, 443, pool.take(rnd.randrange(40, 1200)), vlan)
                    if i % 2 == 0 else udp_frame(s, c, 443, cp, pool.take(rnd.randrange(40, 1200)), vlan))
                   for i in range(n)]
        else:
            evs = dns_flow(rnd, t, c, resolver, f"n{f}.example.org", s, 1024 + (f % 60000))
        events += evs[:budget]
        budget -= len(evs[:budget])
    while budget > 0:  # top up with packets on the last flows so the count is exact
        c, s = clients[0], servers[0]
        events.append((T0 + span, 0, udp_frame(c, s, 40000, 443, pool.take(100))))
        budget -= 1
    events.sort(key=lambda e: e[0])
    yield from events


def write(events: Iterator[Event], path: Path, repeat: int = 1) -> int:
    """Write events as a classic pcap; with `repeat` > 1, the whole record section is written again."""
    n = 0
    with open(path, "wb") as fh:
        fh.write(PCAP_HEADER)
        start = fh.tell()
        batch: list[bytes] = []
        for ts, _o, frame in events:
            sec = int(ts)
            batch.append(REC.pack(sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            batch.append(frame)
            n += 1
            if len(batch) >= 20000:
                fh.write(b"".join(batch))
                batch.clear()
        fh.write(b"".join(batch))
        end = fh.tell()
    if repeat > 1:
        with open(path, "rb") as src, open(path, "ab") as dst:
            for _ in range(repeat - 1):
                src.seek(start)
                left = end - start
                while left:
                    chunk = src.read(min(left, 1 << 24))
                    dst.write(chunk)
                    left -= len(chunk)
        n *= repeat
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", choices=("call", "busy"))
    ap.add_argument("out", type=Path)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1, help="write the record section this many times")
    ap.add_argument("--flows", type=int, default=100_000, help="busy: how many flows the packets are spread over")
    args = ap.parse_args()
    events = (call_events(args.seed, args.packets) if args.workload == "call"
              else busy_events(args.seed, args.packets, args.flows))
    n = write(events, args.out, args.repeat)
    print(f"{args.out}: {n} packets, {args.out.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
