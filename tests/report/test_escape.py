"""Hostile strings from packets are escaped in the terminal, CSV and JSON reports."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS

from analyzer.geo import GeoLookup
from analyzer.pipeline import analyze
from analyzer.report import escape, tabular, terminal
from tests.conftest import write_pcap

HOSTILE = b"=HYPERLINK(\"x\")[bold red]pwn[/]\x1b[2J\x07\xe2\x80\xaeevil\xff.example"


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    hello = bytes(TLS(msg=[TLSClientHello(ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=HOSTILE)])])]))
    frames = [bytes(Ether() / IP(src="10.0.0.5", dst="52.81.100.10") / TCP(sport=50000, dport=443, flags="S")),
              bytes(Ether() / IP(src="10.0.0.5", dst="52.81.100.10") / TCP(sport=50000, dport=443, seq=1) / hello)]
    path = write_pcap(tmp_path_factory.mktemp("h") / "hostile.pcap", frames)
    with GeoLookup() as geo:
        return analyze([path], geo, None)


def test_name_is_kept_with_undecodable_bytes_visible(audit):
    name = audit.flows.loc[0, "server_name"]
    assert name.startswith("=HYPERLINK") and "\\xff" in name and "\x1b" in name


def test_terminal_strips_controls_and_never_interprets_markup(audit):
    buf = io.StringIO()
    terminal.render(audit, Console(file=buf, width=400, force_terminal=True, color_system="truecolor"))
    out = buf.getvalue()
    assert "\x1b[2J" not in out and "\x07" not in out and "\u202e" not in out
    assert "[bold red]pwn[/]" in out and "\\x1b[2J" in out and "\\u202e" in out


def test_csv_neutralises_formulas(audit):
    rows = list(csv.DictReader(line for line in io.StringIO(tabular.to_csv(audit)) if not line.startswith("#")))
    assert rows[0]["server_name"].startswith("'=HYPERLINK")
    assert "\x1b" not in rows[0]["server_name"]


def test_json_is_valid_utf8_with_bytes_escaped(audit):
    text = tabular.to_json(audit)
    text.encode("utf-8")  # no lone surrogates
    assert json.loads(text)["flows"][0]["server_name"].endswith("\\xff.example")


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cell_rule(cell):
    out = escape.csv_cell(cell)
    assert out.startswith(("'", "\\x0")), out  # tab/CR become visible escapes
    assert not out.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert escape.csv_cell("zoom.us") == "zoom.us" and escape.csv_cell(5) == 5
