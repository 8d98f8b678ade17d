"""The HTML report, checked as a parsed document: verdict, evidence filters, offline, escaping, rendering."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from analyzer.jurisdiction import policy_from_expect
from analyzer.pipeline import analyze
from analyzer.report import html
from analyzer.report.evidence import flow_filter, frames_filter
from tests.conftest import SAMPLES, write_pcap

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
HOSTILE_SNI = "<script>alert(1)</script>\"onmouseover=alert(2) x='.example"


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children, self.parts = tag, attrs, parent, [], []

    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text() for p in self.parts)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, tag: str | None = None, **attrs: str) -> list[Node]:
        def ok(n: Node) -> bool:
            if tag and n.tag != tag:
                return False
            for k, v in attrs.items():
                k = k.rstrip("_").replace("_", "-")
                have = n.attrs.get(k)
                if k == "class":
                    if have is None or v not in have.split():
                        return False
                elif have != v:
                    return False
            return True

        return [n for n in self.walk() if ok(n)]


class Tree(HTMLParser):
    """A small DOM from the standard library parser; fails the test on unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        self.cur.parts.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        self.cur.parts.append(node)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.cur.tag == tag, f"</{tag}> closes <{self.cur.tag}>"
        self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.parts.append(data)


def parse(text: str) -> Node:
    t = Tree()
    t.feed(text)
    t.close()
    assert t.cur is t.root, f"unclosed <{t.cur.tag}>"
    return t.root


@pytest.fixture(scope="module")
def zoom(geo):
    return analyze([SAMPLES / "zoom_call.pcap"], geo, policy_from_expect("US,CA"))


@pytest.fixture(scope="module")
def zoom_doc(zoom):
    return parse(html.render(zoom))


def test_verdict_at_the_top(zoom, zoom_doc):
    body = zoom_doc.find("main")[0]
    first = next(c for c in body.children if c.tag == "section")
    assert first.attrs["id"] == "verdict"
    assert first.attrs["data-verdict"] == "violation"
    assert first.attrs["data-violations"] == "1" == str(zoom.summary["violations"])
    assert first.attrs["data-key-exchange-violations"] == "1"
    assert "Policy violated" in first.text()
    assert "CN (China)" in first.text()


def test_every_violating_server_has_evidence_with_filters(zoom, zoom_doc):
    bad = zoom.flows[zoom.flows["verdict"] == "violation"]
    cards = zoom_doc.find("article", class_="evidence")
    assert {c.attrs["data-server"] for c in cards} == set(bad["resp_h"]) == {"52.81.100.10"}
    [card] = cards
    filters = {c.attrs["data-kind"]: c.text() for c in card.find("code", class_="filter")}
    assert filters == {
        "flow": "ip.addr==192.168.1.23 && ip.addr==52.81.100.10 && tcp.port==52619 && tcp.port==443",
        "frames": "frame.number in {38, 53, 55}",
    }
    assert "CN (China) is outside the expected set CA,US" in card.text()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
def test_the_filters_select_exactly_the_evidence_packets(zoom):
    """tshark applies each filter to the capture: the flow filter gives every packet of the flow, no other."""
    row = zoom.flows[zoom.flows["verdict"] == "violation"].iloc[0]
    for expr, want in [
        (
            flow_filter(row["proto"], row["orig_h"], row["orig_p"], row["resp_h"], row["resp_p"]),
            int(row["orig_pkts"] + row["resp_pkts"]),
        ),
        (frames_filter(row["key_frames"]), len(row["key_frames"])),
    ]:
        r = subprocess.run(
            [
                "tshark",
                "-r",
                str(SAMPLES / "zoom_call.pcap"),
                "-Y",
                expr,
                "-T",
                "fields",
                "-e",
                "frame.number",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        frames = [int(x) for x in r.stdout.split()]
        assert len(frames) == want, expr
        if expr.startswith("frame"):
            assert frames == list(row["key_frames"])


def test_filters_for_ipv6_and_revealed_endpoints():
    assert flow_filter("udp", "2001:db8::1", 5000, "2a00:1450::7", 3478) == (
        "ipv6.addr==2001:db8::1 && ipv6.addr==2a00:1450::7 && udp.port==5000 && udp.port==3478"
    )
    assert (
        flow_filter("udp", "10.0.0.1", None, "18.192.120.5", 52011)
        == "ip.addr==18.192.120.5 && udp.port==52011"
    )
    assert flow_filter("udp", "10.0.0.1", 5060, "10.0.0.2", 5060) == (
        "ip.addr==10.0.0.1 && ip.addr==10.0.0.2 && udp.port==5060"
    )
    assert flow_filter("udp", "x", 1, "not an address", 2) is None
    assert frames_filter([7]) == "frame.number == 7"
    assert frames_filter([]) is None


EXTERNAL = re.compile(r"^\s*(?:https?:|//|ftp:|data:text/html)", re.IGNORECASE)


def test_nothing_is_loaded_from_anywhere(zoom_doc):
    loading = {
        "src",
        "href",
        "xlink:href",
        "action",
        "formaction",
        "poster",
        "data",
        "srcset",
        "background",
        "ping",
        "manifest",
        "cite",
    }
    for node in zoom_doc.walk():
        for k, v in node.attrs.items():
            if k in loading:
                pytest.fail(f"<{node.tag} {k}={v!r}> would load or link something")
            if k != "xmlns" and v and EXTERNAL.match(v):
                pytest.fail(f"<{node.tag} {k}={v!r}> points outside the file")
        assert node.tag not in (
            "link",
            "iframe",
            "object",
            "embed",
            "img",
            "image",
            "use",
            "audio",
            "video",
            "base",
        )
    for style in zoom_doc.find("style"):
        assert "@import" not in style.text() and "url(" not in style.text()
    [csp] = zoom_doc.find("meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in csp.attrs["content"]
    [script] = zoom_doc.find("script")
    assert "src" not in script.attrs
    digest = base64.b64encode(hashlib.sha256(script.text().encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp.attrs["content"]  # the one inline script is the one allowed


def test_map_timeline_bytes_and_table(zoom, zoom_doc):
    [svg_map] = zoom_doc.find("svg", class_="map")
    assert len(svg_map.find("path")) > 150  # country outlines
    markers = svg_map.find("g", class_="marker")
    assert {m.find("text")[0].text() for m in markers} == {"US", "CA", "CN"}
    red = [m for m in markers if m.find("circle")[0].attrs["fill"] == html.VERDICT_COLOUR["violation"]]
    assert [m.find("text")[0].text() for m in red] == ["CN"]
    [timeline] = zoom_doc.find("svg", class_="timeline")
    bars = timeline.find("g", class_="flow")
    assert {b.attrs["data-uid"] for b in bars} == set(zoom.flows.loc[zoom.flows["first_ts"].notna(), "uid"])
    assert len(timeline.find("path", class_="kx-mark")) == int(zoom.flows["key_exchange"].notna().sum())
    [chart] = zoom_doc.find("svg", class_="bytes")
    assert [g.attrs["data-cc"] for g in chart.find("g", class_="country")] == ["US", "CA", "CN"]
    [table] = zoom_doc.find("table", id="flow-table")
    rows = table.find("tbody")[0].find("tr")
    assert len(rows) == len(zoom.flows)
    assert rows[0].attrs["class"] == "v-violation"
    text = zoom_doc.text()
    assert "dbip-country.mmdb" in text and "2026-06-01" in text and "IP Geolocation by DB-IP" in text
    assert "--expect US,CA" in text


def _tls_hello_pcap(path: Path, sni: str) -> Path:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
    from scapy.layers.tls.handshake import TLSClientHello
    from scapy.layers.tls.record import TLS

    hello = bytes(
        TLS(msg=[TLSClientHello(ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())])])])
    )
    c, s = ("10.0.0.5", 50000), ("52.81.100.10", 443)
    frames = [
        bytes(Ether() / IP(src=c[0], dst=s[0]) / TCP(sport=c[1], dport=s[1], seq=99, flags="S")),
        bytes(Ether() / IP(src=s[0], dst=c[0]) / TCP(sport=s[1], dport=c[1], seq=5, ack=100, flags="SA")),
        bytes(Ether() / IP(src=c[0], dst=s[0]) / TCP(sport=c[1], dport=s[1], seq=100, flags="PA") / hello),
    ]
    return write_pcap(path, frames)


def test_hostile_strings_from_packets_and_file_names_stay_text(geo, tmp_path):
    path = _tls_hello_pcap(tmp_path / '"><img src=x onerror=alert(3)>.pcap', HOSTILE_SNI)
    audit = analyze([path], geo, policy_from_expect("US"))
    assert audit.flows["server_name"].iloc[0] == HOSTILE_SNI  # the parser kept it; the report must cope
    text = html.render(audit)
    doc = parse(text)
    assert len(doc.find("script")) == 1 and doc.find("script")[0].text() == html.SCRIPT
    assert not doc.find("img")
    for node in doc.walk():
        assert not [k for k in node.attrs if k.startswith("on")], node.tag
    [card] = doc.find("article", class_="evidence")
    assert HOSTILE_SNI in card.text()  # shown, as text
    assert path.name in doc.find("h1")[0].text()
    assert "<script>alert" not in text and "onerror=alert(3)>" not in text.replace("&gt;", "")


def test_control_and_bidi_characters_are_shown_not_obeyed(geo, tmp_path):
    sni = "zoom.us\u202egnp.exe\x1b[31m"
    audit = analyze([_tls_hello_pcap(tmp_path / "bidi.pcap", sni)], geo, policy_from_expect("US"))
    text = html.render(audit)
    assert "\u202e" not in text and "\x1b" not in text
    assert "zoom.us\\u202egnp.exe\\x1b[31m" in parse(text).text()


def test_campaign_section_for_several_captures(geo):
    audit = analyze(
        [SAMPLES / "zoom_call.pcap", SAMPLES / "webrtc_relay.pcapng"], geo, policy_from_expect("US,CA")
    )
    doc = parse(html.render(audit))
    [section_title] = [h for h in doc.find("h2") if h.attrs.get("id") == "campaign"]
    assert section_title.text().startswith("Campaign: 2 calls, 2 with violations")
    [verdict] = doc.find("section", id="verdict")
    assert "key exchange reached CN (China) in 1 of 2 calls" in verdict.text()
    captures_in_evidence = {c.find("code")[0].text() for c in doc.find("article", class_="evidence")}
    assert captures_in_evidence == {str(SAMPLES / "zoom_call.pcap"), str(SAMPLES / "webrtc_relay.pcapng")}


def test_no_policy_says_unchecked(geo):
    doc = parse(html.render(analyze([SAMPLES / "zoom_call.pcap"], geo, None)))
    [verdict] = doc.find("section", id="verdict")
    assert verdict.attrs["data-verdict"] == "unchecked"
    assert not doc.find("article", class_="evidence")


def chromium() -> str | None:
    return next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )


def screenshot(page: Path, png: Path, height: int = 1800) -> None:
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size=1400,{height}",
                page.as_uri(),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert png.exists(), r.stderr[-2000:]


@pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)"
)
def test_report_renders_in_headless_chromium(zoom, tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(html.render(zoom), encoding="utf-8")
    png = tmp_path / "report.png"
    screenshot(page, png)
    img = Image.open(png).convert("RGB")
    assert img.size == (1400, 1800)
    colours = img.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200, "a blank or unstyled page"
    counts = {c: n for n, c in colours}
    # the verdict's red heading, the map's land grey and the violating country's tint are all on screen
    assert counts.get((0xD6, 0x27, 0x28), 0) > 200
    assert counts.get((0xD5, 0xDB, 0xE1), 0) > 20_000
    assert counts.get((0xF3, 0xB3, 0xB3), 0) > 500
