"""Each escaping rule, with a hostile string of each kind, in each output format (issue 7).

One capture carries the same hostile bytes as a TLS SNI, a DNS name, a certificate name, SIP headers
(From, User-Agent) and STUN SOFTWARE/REALM. Rules: the terminal shows control and reordering characters as
escapes and never interprets rich markup; CSV neutralises cells starting with = + - @; JSON is valid
UTF-8 with undecodable bytes kept as \\xNN escapes; HTML escapes markup.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import struct

import pytest
from rich.console import Console
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from analyzer.geo import GeoLookup
from analyzer.jurisdiction import policy_from_expect
from analyzer.pipeline import analyze
from analyzer.report import tabular, terminal
from tests.conftest import write_pcap

# Formula start, rich markup, ANSI escape (clear screen), BEL, RTL override, HTML, an undecodable byte;
# short enough for one DNS label (63 bytes) and a certificate CN (64 characters).
CORE = b"=1+2[bold red]pwn[/]\x1b[2J\x07\xe2\x80\xae<script>\xff"
RAW_CONTROLS = ("\x1b", "\x07", "\u202e")
KINDS = ("sni", "dns", "cert", "sip", "stun")
CLIENT = "10.0.0.5"
SERVER = {
    "sni": "52.81.100.10",
    "dns": "52.81.100.20",
    "cert": "52.81.100.30",
    "sip": "52.81.100.40",
    "stun": "52.81.100.50",
    "resolver": "52.81.100.53",
}


def hostile(kind: str) -> bytes:
    return CORE + b"-" + kind.encode()


def _tcp(
    dst: str, sport: int, payload: bytes = b"", flags: str = "PA", seq: int = 1, reply: bool = False
) -> bytes:
    ip = IP(src=dst, dst=CLIENT) if reply else IP(src=CLIENT, dst=dst)
    tcp = (
        TCP(sport=443, dport=sport, flags=flags, seq=seq)
        if reply
        else TCP(sport=sport, dport=443, flags=flags, seq=seq)
    )
    return bytes(Ether() / ip / tcp / payload)


def _udp(dst: str, sport: int, dport: int, payload: bytes, reply: bool = False) -> bytes:
    ip = IP(src=dst, dst=CLIENT) if reply else IP(src=CLIENT, dst=dst)
    udp = UDP(sport=dport, dport=sport) if reply else UDP(sport=sport, dport=dport)
    return bytes(Ether() / ip / udp / payload)


def _record(*messages: bytes) -> bytes:
    body = b"".join(messages)
    return b"\x16\x03\x03" + struct.pack("!H", len(body)) + body


def _handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def _client_hello(sni: bytes | None) -> bytes:
    ext = b""
    if sni is not None:
        ext = struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    body = (
        b"\x03\x03"
        + b"\x11" * 32
        + b"\x00"
        + b"\x00\x02\xc0\x2f"
        + b"\x01\x00"
        + struct.pack("!H", len(ext))
        + ext
    )
    return _record(_handshake(1, body))


def _certificate(cn: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(Encoding.DER)
    certs = len(der).to_bytes(3, "big") + der
    hello = _handshake(2, b"\x03\x03" + b"\x22" * 32 + b"\x00" + b"\xc0\x2f\x00" + b"\x00\x00")
    return _record(hello, _handshake(11, len(certs).to_bytes(3, "big") + certs))


def _dns_response(name: bytes, address: str) -> bytes:
    qname = b"".join(bytes([len(label)]) + label for label in name.split(b".")) + b"\0"
    header = struct.pack("!HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes(map(int, address.split(".")))
    return header + qname + struct.pack("!HH", 1, 1) + answer


def _dns_query(name: bytes) -> bytes:
    qname = b"".join(bytes([len(label)]) + label for label in name.split(b".")) + b"\0"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def _sip_invite(value: bytes) -> bytes:
    return (
        b"INVITE sip:bob@example.org SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK776\r\n"
        b"From: <sip:" + value + b"@example.org>;tag=1\r\n"
        b"To: <sip:bob@example.org>\r\n"
        b"Call-ID: 42@10.0.0.5\r\nCSeq: 1 INVITE\r\n"
        b"User-Agent: " + value + b"\r\nContent-Length: 0\r\n\r\n"
    )


def _stun(mtype: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = b""
    for atype, value in attrs:
        body += struct.pack("!HH", atype, len(value)) + value + b"\0" * (-len(value) % 4)
    return struct.pack("!HHI", mtype, len(body), 0x2112A442) + b"\x5a" * 12 + body


def hostile_capture(path):
    cn = hostile("cert").decode("utf-8", errors="backslashreplace")  # a certificate holds Unicode text
    dns_name = hostile("dns") + b".example"
    frames = [
        _tcp(SERVER["sni"], 50001, flags="S", seq=0),
        _tcp(SERVER["sni"], 50001, _client_hello(hostile("sni"))),
        _udp(SERVER["resolver"], 40000, 53, _dns_query(dns_name)),
        _udp(SERVER["resolver"], 40000, 53, _dns_response(dns_name, SERVER["dns"]), reply=True),
        _tcp(SERVER["dns"], 50002, flags="S", seq=0),
        _tcp(SERVER["dns"], 50002, b"GET / HTTP/1.1\r\n\r\n"),
        _tcp(SERVER["cert"], 50003, flags="S", seq=0),
        _tcp(SERVER["cert"], 50003, _client_hello(None)),
        _tcp(SERVER["cert"], 50003, _certificate(cn), seq=1, reply=True),
        _udp(SERVER["sip"], 5060, 5060, _sip_invite(hostile("sip"))),
        _udp(SERVER["stun"], 50004, 3478, _stun(0x0001, [])),
        _udp(
            SERVER["stun"],
            50004,
            3478,
            _stun(0x0101, [(0x8022, hostile("stun")), (0x0014, hostile("realm"))]),
            reply=True,
        ),
    ]
    return write_pcap(path, frames)


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    path = hostile_capture(tmp_path_factory.mktemp("esc") / "hostile.pcap")
    with GeoLookup() as geo:
        return analyze([path], geo, policy_from_expect("US"))


def _row(audit, kind: str) -> dict:
    return next(r for r in tabular.flow_records(audit) if r["resp_h"] == SERVER[kind])


def test_every_hostile_string_reaches_the_audit(audit):
    assert _row(audit, "sni")["server_name_source"] == "sni"
    assert _row(audit, "dns")["server_name_source"] == "dns"
    assert _row(audit, "cert")["server_name_source"] == "cert"
    for kind in ("sni", "dns", "cert"):
        assert _row(audit, kind)["server_name"].startswith("=1+2"), kind
    sip = _row(audit, "sip")["details"]
    assert any("pwn" in ua for ua in sip["sip_user_agents"]) and any("pwn" in f for f in sip["sip_from"])
    stun = _row(audit, "stun")["details"]
    assert any("pwn" in s for s in stun["software"]) and "pwn" in stun["realm"]


# ---- JSON: valid UTF-8, undecodable bytes kept visibly --------------------------------------------------


def test_json_is_valid_utf8_and_keeps_undecodable_bytes_escaped(audit):
    raw = tabular.to_json(audit).encode("utf-8")  # raises on a lone surrogate
    doc = json.loads(raw.decode("utf-8"))
    rows = {f["resp_h"]: f for f in doc["flows"]}
    strings = {
        "sni": rows[SERVER["sni"]]["server_name"],
        "dns": rows[SERVER["dns"]]["server_name"],
        "cert": rows[SERVER["cert"]]["server_name"],
        "sip": " ".join(rows[SERVER["sip"]]["details"]["sip_user_agents"]),
        "sip-from": " ".join(rows[SERVER["sip"]]["details"]["sip_from"]),
        "stun": " ".join(rows[SERVER["stun"]]["details"]["software"]),
        "realm": rows[SERVER["stun"]]["details"]["realm"],
    }
    for kind, value in strings.items():
        assert "\ufffd" not in value, f"{kind}: an undecodable byte was dropped"
        assert "\\xff" in value, f"{kind}: the undecodable byte is not shown escaped: {value!r}"
        assert "[bold red]pwn[/]" in value and "<script>" in value, kind  # text kept as it was sent
    assert "\ufffd" not in raw.decode("utf-8")


# ---- terminal: controls escaped, markup never interpreted -------------------------------------------------


def _terminal(audit) -> str:
    buf = io.StringIO()
    terminal.render(audit, Console(file=buf, width=1000, force_terminal=True, color_system="truecolor"))
    return buf.getvalue()


def test_terminal_escapes_controls_and_never_interprets_markup(audit):
    out = _terminal(audit)
    assert "\x07" not in out and "\u202e" not in out
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", out)  # only rich's own colour codes remain
    for kind in ("sni", "dns", "cert"):
        assert f"[bold red]pwn[/]\\x1b[2J\\x07\\u202e<script>\\xff-{kind}" in out, kind


def test_terminal_text_helper_escapes_every_kind():
    from analyzer.report.escape import terminal as esc

    for kind in (*KINDS, "realm"):
        value = esc(hostile(kind).decode("utf-8", errors="backslashreplace"))
        assert not any(c in value for c in RAW_CONTROLS) and "[bold red]pwn[/]" in value


# ---- CSV: formulas neutralised, controls escaped ----------------------------------------------------------


def _csv_rows(audit) -> list[dict]:
    text = tabular.to_csv(audit)
    assert not any(c in text for c in RAW_CONTROLS)
    return list(csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#")))


def test_csv_neutralises_formulas_for_every_kind(audit):
    rows = {r["resp_h"]: r for r in _csv_rows(audit)}
    for kind in ("sni", "dns", "cert"):
        cell = rows[SERVER[kind]]["server_name"]
        assert cell.startswith("'=1+2"), (kind, cell)
        assert "\\x1b[2J" in cell and "\\xff" in cell, kind
    for cell in (rows[SERVER["sip"]]["details"], rows[SERVER["stun"]]["details"]):
        assert not cell.startswith(("=", "+", "-", "@")) and "pwn" in cell
    for row in rows.values():
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_csv_rule_for_each_formula_start(tmp_path, start):
    sni = start.encode() + b"SUM(1)" + CORE[4:]
    frames = [_tcp(SERVER["sni"], 50001, flags="S", seq=0), _tcp(SERVER["sni"], 50001, _client_hello(sni))]
    path = write_pcap(tmp_path / "f.pcap", frames)
    with GeoLookup() as geo:
        audit = analyze([path], geo, None)
    rows = _csv_rows(audit)
    assert rows[0]["server_name"].startswith("'" + start), rows[0]["server_name"]


# ---- HTML: markup escaped ---------------------------------------------------------------------------------


def test_html_escapes_every_kind(audit):
    html = pytest.importorskip("analyzer.report.html")
    page = html.render(audit)
    assert "<script>\\xff" not in page  # markup from packets never reaches the page as markup
    assert "\u202e" not in page and "\x1b" not in page and "\x07" not in page
    for kind in ("sni", "dns", "cert"):
        assert f"[bold red]pwn[/]\\x1b[2J\\x07\\u202e&lt;script&gt;\\xff-{kind}" in page, kind


def test_other_packet_strings_keep_undecodable_bytes_visible():
    """ZRTP client ids and SIP headers decode like SNI and DNS names: \\xNN for a byte that is not UTF-8."""
    from analyzer.protocols import sip, zrtp

    body = bytearray(100)
    body[16:32] = b"cli\xffent".ljust(16)
    assert zrtp.hello(bytes(body))["client"] == "cli\\xffent"
    msg = sip.parse_message(_sip_invite(hostile("sip")))
    assert msg["headers"]["user-agent"].endswith("<script>\\xff-sip")


def test_jsonl_and_parquet_keep_every_kind_as_valid_utf8(audit, tmp_path):
    columnar = pytest.importorskip("analyzer.report.columnar")
    lines = columnar.to_jsonl(audit).encode("utf-8").decode("utf-8").splitlines()
    rows = {r["resp_h"]: r for r in map(json.loads, lines)}
    for kind in ("sni", "dns", "cert"):
        assert rows[SERVER[kind]]["server_name"].endswith(("\\xff-" + kind, "\\xff-dns.example")), kind
    assert any("\\xff-sip" in ua for ua in rows[SERVER["sip"]]["details"]["sip_user_agents"])
    path = tmp_path / "a.parquet"
    columnar.write_parquet(audit, path)
    back = columnar.read_parquet([path])
    assert sorted(back.flows["server_name"].dropna()) == sorted(audit.flows["server_name"].dropna())
