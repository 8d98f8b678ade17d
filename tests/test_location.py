"""Tests for analyzer/location.py: round trips from real packet timing, and each location_check value."""

from __future__ import annotations

import socket
import struct
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from analyzer.errors import CallauditError
from analyzer.jurisdiction import policy_from_expect
from analyzer.location import (
    Place,
    _capture_host,
    handshake_rtt,
    judge_location,
    min_distance_km,
    parse_vantage,
)
from analyzer.pipeline import analyze
from analyzer.protocols import Sample

CLIENT = "192.168.1.10"
# server -> (country in the embedded DB-IP data, SYN -> SYN/ACK in ms or None for no answer)
SERVERS = {
    "144.195.12.10": ("US", 2.0),
    "18.192.120.5": ("DE", 40.0),
    "52.81.100.10": ("CN", 300.0),
    "52.80.0.1": ("CN", 4.0),
    "111.235.160.1": ("CN", None),
}


def _ip(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + header + payload


def tcp(src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    return _ip(src, dst, 6, struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0))


def write_timed_pcap(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    """A classic pcap with each frame at its own time (conftest's writer spaces frames 10 ms apart)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for ts, frame in sorted(packets, key=lambda p: p[0]):
        out += struct.pack("<IIII", int(ts), round((ts % 1) * 1e6), len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


@pytest.fixture(scope="module")
def rtt_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SYN -> SYN/ACK pairs at chosen round trips; servers spaced one second apart."""
    packets = []
    t0 = 1_700_000_000.0
    for i, (server, (_, rtt)) in enumerate(SERVERS.items()):
        start = t0 + i
        packets.append((start, tcp(CLIENT, server, 50000 + i, 443, 0x02)))
        if rtt is not None:
            packets.append((start + rtt / 1000, tcp(server, CLIENT, 443, 50000 + i, 0x12)))
            packets.append((start + rtt / 1000 + 0.0005, tcp(CLIENT, server, 50000 + i, 443, 0x10)))
    return write_timed_pcap(tmp_path_factory.mktemp("rtt") / "rtt.pcap", packets)


@pytest.fixture(scope="module")
def audit(rtt_capture: Path, geo):
    return analyze([rtt_capture], geo, policy_from_expect("US"), vantage=parse_vantage("US", geo))


def _by_server(audit) -> dict[str, pd.Series]:
    return {row["resp_h"]: row for _, row in audit.flows.iterrows()}


def test_round_trips_measured_from_the_capture(audit) -> None:
    rows = _by_server(audit)
    for server, (cc, rtt) in SERVERS.items():
        assert rows[server]["resp_cc"] == cc
        if rtt is None:
            assert pd.isna(rows[server]["rtt_ms"])
        else:
            assert rows[server]["rtt_ms"] == pytest.approx(rtt, abs=0.01)
            assert rows[server]["rtt_source"] == "tcp handshake"


def test_each_location_check_value(audit) -> None:
    rows = _by_server(audit)
    checks = {server: rows[server]["location_check"] for server in SERVERS}
    assert checks == {"144.195.12.10": "consistent", "18.192.120.5": "implausible",
                      "52.81.100.10": "consistent", "52.80.0.1": "impossible", "111.235.160.1": "unknown"}
    assert audit.summary["location_checks"] == {"consistent": 2, "implausible": 1, "impossible": 1, "unknown": 1}


def test_impossible_location_is_suspect_with_the_numbers(audit) -> None:
    row = _by_server(audit)["52.80.0.1"]
    assert row["verdict"] == "suspect"
    assert row["location_reason"].startswith(
        "database (dbip-country.mmdb) says CN, but a 4 ms RTT (tcp handshake) from a US vantage bounds the "
        "server within 600 km; CN is at least ")
    assert "by the database alone: violation (CN (China) is outside the expected set US)" in row["reason"]
    assert audit.summary["suspects"] == 1


def test_implausible_and_consistent_keep_the_database_verdict(audit) -> None:
    rows = _by_server(audit)
    de = rows["18.192.120.5"]
    assert de["verdict"] == "violation"
    assert "puts the server within 3,997 km over fibre (5,996 km in vacuum)" in de["location_reason"]
    assert rows["144.195.12.10"]["verdict"] == "ok"
    assert rows["52.81.100.10"]["verdict"] == "violation"
    assert "allows up to 29,979 km over fibre" in rows["52.81.100.10"]["location_reason"]
    assert rows["111.235.160.1"]["location_reason"] == "no handshake round trip measured from the capturing host"


def test_no_vantage_is_unknown(rtt_capture: Path, geo) -> None:
    """A private capture host with no STUN mapped address and no --vantage: nothing to measure from."""
    result = analyze([rtt_capture], geo, policy_from_expect("US"))
    assert set(result.flows["location_check"]) == {"unknown"}
    assert (result.flows["verdict"] != "suspect").all()


def test_public_client_address_is_the_vantage(tmp_path: Path, geo) -> None:
    client = "144.195.12.20"  # a US address as the capture host itself
    packets = [(1.0, tcp(client, "52.80.0.1", 40000, 443, 0x02)), (1.004, tcp("52.80.0.1", client, 443, 40000, 0x12)),
               (2.0, tcp(client, "170.114.52.2", 40001, 443, 0x02)),
               (2.003, tcp("170.114.52.2", client, 443, 40001, 0x12))]
    result = analyze([write_timed_pcap(tmp_path / "c.pcap", packets)], geo, None)
    rows = _by_server(result)
    assert rows["52.80.0.1"]["location_check"] == "impossible"
    assert rows["52.80.0.1"]["verdict"] == "unchecked"  # no policy: the check is reported, nothing judged
    assert rows["170.114.52.2"]["location_check"] == "consistent"


def test_rtt_is_ignored_when_the_capture_host_is_the_server(tmp_path: Path, geo) -> None:
    """Captured at the server, SYN -> SYN/ACK is the server's own turnaround, not a path round trip."""
    server = "192.168.1.10"
    packets = []
    for i, client in enumerate(("52.80.0.1", "52.80.0.2", "18.192.120.5")):
        packets += [(i + 1.0, tcp(client, server, 40000, 443, 0x02)),
                    (i + 1.0001, tcp(server, client, 443, 40000, 0x12))]
    result = analyze([write_timed_pcap(tmp_path / "s.pcap", packets)], geo, None, vantage=Place("US", cc="US"))
    assert "impossible" not in set(result.flows["location_check"])


# --- round trips from UDP handshakes ------------------------------------------------------------


def _stun(kind: int, txid: bytes) -> bytes:
    return struct.pack("!HHI", kind, 0, 0x2112A442) + txid


def test_stun_round_trip_paired_by_transaction_id() -> None:
    a, b = b"A" * 12, b"B" * 12
    samples = [Sample(1, 10.000, True, 0, _stun(0x0001, a)), Sample(2, 10.001, True, 0, _stun(0x0001, b)),
               Sample(3, 10.050, False, 0, _stun(0x0101, b)),  # answers b: 49 ms
               Sample(4, 10.090, False, 0, _stun(0x0101, a)),  # answers a: 90 ms
               Sample(5, 10.095, False, 0, _stun(0x0101, b"C" * 12))]  # unmatched: ignored
    assert handshake_rtt("udp", None, samples, []) == {"rtt_ms": 49.0, "rtt_source": "stun transaction, frame 3"}
    assert handshake_rtt("udp", 12.5, samples, []) == {"rtt_ms": 12.5, "rtt_source": "tcp handshake"}
    assert handshake_rtt("udp", None, [], []) == {"rtt_ms": None, "rtt_source": None}


def test_dtls_first_flight_only_when_the_client_spoke_first() -> None:
    samples = [Sample(7, 5.0, True, 0, b"\x16\xfe\xfd"), Sample(8, 5.0312, False, 0, b"\x16\xfe\xfd")]
    assert handshake_rtt("udp", None, samples, ["dtls"]) == {"rtt_ms": 31.2, "rtt_source": "dtls first flight, frame 8"}
    assert handshake_rtt("udp", None, samples, ["rtp"])["rtt_ms"] is None
    server_first = [Sample(6, 4.99, False, 0, b"\x16\xfe\xfd"), *samples]
    assert handshake_rtt("udp", None, server_first, ["dtls"])["rtt_ms"] is None


# --- the bound itself ---------------------------------------------------------------------------


def test_judge_location_boundaries() -> None:
    nyc = Place("nyc", lat=40.71, lon=-74.01)
    london = Place("london", "GB", lat=51.51, lon=-0.13)
    d = min_distance_km(nyc, london)
    assert d == pytest.approx(5570, rel=0.01)
    assert judge_location(nyc, london, 2 * d / 299.792458 * 0.99)[0] == "impossible"
    assert judge_location(nyc, london, 2 * d / 299.792458 * 1.01)[0] == "implausible"
    assert judge_location(nyc, london, 2 * d / (299.792458 * 2 / 3) * 1.01)[0] == "consistent"
    # an accuracy radius only ever brings the server closer
    wide = Place("london", "GB", lat=51.51, lon=-0.13, radius_km=1000)
    assert min_distance_km(nyc, wide) == pytest.approx(d - 1000)
    assert judge_location(nyc, london, None) == ("unknown", "no handshake round trip measured from the capturing host")
    assert judge_location(None, london, 5)[0] == "unknown"
    assert judge_location(nyc, None, 5) == ("unknown", "no database locates the server")


def test_parse_vantage(geo) -> None:
    assert parse_vantage("us", geo) == Place("US", cc="US", source="--vantage")
    assert parse_vantage(" 40.71, -74.01 ", geo) == Place("40.71,-74.01", lat=40.71, lon=-74.01, source="--vantage")
    assert parse_vantage("52.81.100.10", geo).cc == "CN"
    for bad, message in (("XX", "unknown country code"), ("91,0", "latitude"), ("192.168.1.1", "private"),
                         ("nowhere", "country code, lat,lon, or a public IP")):
        with pytest.raises(CallauditError, match=message):
            parse_vantage(bad, geo)


@pytest.mark.parametrize(("orig", "resp"), [
    (["a", "b", "b", None], ["c", "a", None, "c"]),  # a tie: the first seen in orig_h, then resp_h
    (["x", "y"], ["y", "x"]),
    ([None, None], [None, "z"]),
    ([None], [None]),
    ([], []),
])
def test_capture_host_is_the_busiest_address_first_seen(orig: list, resp: list) -> None:
    df = pd.DataFrame({"orig_h": pd.Series(orig, dtype="str"), "resp_h": pd.Series(resp, dtype="str")})
    seen = Counter(df["orig_h"].dropna().tolist()) + Counter(df["resp_h"].dropna().tolist())
    assert _capture_host(df) == (seen.most_common(1)[0][0] if seen else None)
