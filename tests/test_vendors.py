"""vendors.py: the strongest evidence wins; shared ASNs and ports need the vendor elsewhere in the capture."""

from __future__ import annotations

import pytest

from analyzer.vendors import Rules, attribute, attribute_columns, attribute_rows, rules, strong, weak
from tests.conftest import CAPTURES


def row(**kw):
    base = {"capture": "c", "server_name": None, "server_name_source": None, "resp_asn": None, "proto": "udp",
            "resp_p": 443, "details": {}}
    return base | kw


def test_domain_beats_everything():
    assert attribute(row(server_name="zoomfrn99mmr.zoom.us", server_name_source="sni", resp_p=3480)) == (
        "zoom", "domain zoom.us (sni)")
    assert attribute(row(server_name="notzoom.us"))[0] is None  # suffix match on label boundaries only


def test_protocol_evidence_beats_port():
    # Zoom's classic STUN on 3479, a port the Teams rule also lists: the protocol decides
    assert attribute(row(resp_p=3479, details={"zoom_stun": {"request": 3}})) == ("zoom", "protocol: zoom_stun")
    assert attribute(row(resp_p=3479)) == ("teams", "udp port 3479")
    assert attribute(row(resp_p=3478))[0] is None  # every STUN server's port


@pytest.mark.parametrize(("details", "vendor"), [
    ({"stun_attributes": [6, 0x8070]}, "teams"), ({"stun_attrs": ["0x8054"]}, "teams"),
    ({"stun_attributes": [0xFF03]}, "meet"), ({"stun_types": [0x0001, 0x0801]}, "whatsapp"),
    ({"zoom_encapsulation": "p2p"}, "zoom"), ({"stun_types": ["junk", None]}, None),
])
def test_stun_and_protocol_rules(details, vendor):
    assert attribute(row(resp_p=3478, details=details))[0] == vendor


def test_asns_alone_and_with_context():
    assert attribute(row(resp_asn=30103)) == ("zoom", "AS30103")
    assert attribute(row(resp_asn=13445))[0] == "webex"
    assert attribute(row(resp_asn=8075))[0] is None  # Microsoft hosts much more than Teams
    rows = [row(server_name="teams.microsoft.com"), row(resp_asn=8075), row(capture="other", resp_asn=8075),
            row(resp_asn=32934), row(resp_p=19302)]
    got = attribute_rows(rows)
    assert got[1] == ("teams", "AS8075 with teams elsewhere in the capture")
    assert got[2] == (None, None) and got[3] == (None, None)  # no Teams in that capture; no WhatsApp here
    assert got[4] == (None, None)  # Google's STUN port is everyone's STUN port


def test_meet_port_needs_meet_in_capture():
    got = attribute_rows([row(server_name="meet.google.com", proto="tcp"), row(resp_p=19305)])
    assert got[1] == ("meet", "udp port 19305 with meet elsewhere in the capture")


def test_real_captures(geo):
    from analyzer.pipeline import analyze
    from tests.conftest import CAPTURES

    def vendors(name):
        df = analyze([CAPTURES / name], geo, None).flows
        return df

    zoom = vendors("ndpi_zoom.pcap")
    media = zoom[(zoom.resp_p == 8801)]
    assert set(media.vendor) == {"zoom"}
    assert set(zoom[zoom.resp_p.isin([3478, 3479])].vendor) == {"zoom"}  # classic STUN, not Teams' 3479
    teams = vendors("ndpi_teams.pcap")
    stun = teams[teams.service.fillna("").str.contains("stun")]
    assert len(stun) and set(stun.vendor) == {"teams"}
    webex = vendors("ndpi_webex.pcap")
    assert (webex.vendor == "webex").sum() >= 5  # certificate names where the ClientHellos carry no SNI
    meet = vendors("ndpi_google_meet.pcapng")
    assert "meet" in set(meet.vendor)


def test_turn_realm_names_the_vendor_of_signal_relays():
    from analyzer.geo import GeoLookup
    from analyzer.pipeline import analyze

    with GeoLookup() as geo:
        flows = analyze([CAPTURES / "ndpi_stun_signal.pcapng"], geo, None).flows
    relays = flows[flows["resp_h"].isin(["35.158.183.167", "35.158.122.211"]) & (flows["resp_pkts"] > 0)]
    assert len(relays) and set(relays["vendor"]) == {"signal"}
    assert set(relays["vendor_evidence"]) == {"STUN realm signal.org"}


def test_domain_by_labels_is_the_longest_listed_suffix() -> None:
    r = rules()
    names = [s for s, _ in r.domains] + [f"a.b.{s}" for s, _ in r.domains] + [f"x{s}" for s, _ in r.domains]
    names += ["", "us", "zoom.us.example.com", "a..zoom.us", ".zoom.us"]
    for name in names:
        expected = next(((s, v) for s, v in r.domains if name == s or name.endswith("." + s)), None)
        assert r.domain(name) == expected, name
    listed_twice = Rules((("zoom.us", "first"), ("zoom.us", "second"), ("us", "short")), (), {}, {}, {}, {}, (), ())
    assert listed_twice.domain("a.zoom.us") == ("zoom.us", "first")
    assert listed_twice.domain("example.us") == ("us", "short")


def test_attribute_columns_match_row_by_row() -> None:
    """Judged once per distinct value, each row still gets what strong() then weak() give it."""
    na = float("nan")
    rows = [row(capture=cap, server_name=name, server_name_source=source, resp_asn=asn, proto=proto, resp_p=port,
                details=details)
            for cap in ("a", "b")
            for name, source in ((None, None), ("zoom.us", "sni"), ("zoom.us", None), ("x.zoom.us.", "dns"))
            for asn in (None, na, 8075, 8075.0, "8075")
            for proto, port in (("udp", 3479), ("udp", 3479.0), ("tcp", 3479), ("udp", None), ("udp", na))
            for details in ({}, None, {"stun_attributes": [0x8070]}, {"realm": "signal.org"}, {"tls_version": 1})]
    rows += [row(capture="c", resp_asn=8075), row(capture="c", resp_p=3480)]
    first = [strong(r) for r in rows]
    context: dict = {}
    for r, (vendor, _) in zip(rows, first, strict=True):
        if vendor:
            context.setdefault(r["capture"], set()).add(vendor)
    expected = [hit if hit[0] else weak(r, context.get(r["capture"], set())) for r, hit in zip(rows, first, strict=True)]
    assert attribute_rows(rows) == expected
    keys = ("capture", "server_name", "server_name_source", "resp_asn", "proto", "resp_p", "details")
    assert attribute_columns(*([r[k] for r in rows] for k in keys)) == expected
    assert "udp port 3479.0" in {e for _, e in expected}  # the value as given, not one equal to it
