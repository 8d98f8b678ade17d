"""SIP (RFC 3261) over UDP/TCP and the SDP (RFC 4566) it carries: who called whom, and where the media went.

SDP `c=`/`m=` lines name the media endpoints, which become rows of their own and tie the RTP flows to the
call. The keying is in the SDP too: `a=crypto` (SDES, RFC 4568) puts the SRTP master key in the signalling
itself, so whoever reads the SIP reads the call; `a=fingerprint` means DTLS-SRTP, `a=key-mgmt:mikey` MIKEY
(RFC 3830/4567). SIP over TLS (5061) is opaque here. Everything in these messages is attacker-controlled:
lines, counts and stored strings are bounded and nothing is trusted to parse.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections import Counter

from analyzer.protocols import Facts, FlowView, frame_at

PORTS = frozenset({5060, 5080})
HINT_PORTS = PORTS  # `client_hint` says nothing unless a port is one of these
METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "PRACK", "SUBSCRIBE", "NOTIFY",
                     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"})
COMPACT = {"i": "call-id", "f": "from", "t": "to", "l": "content-length", "c": "content-type", "m": "contact"}
MAX_MESSAGES = 4096
MAX_LINES = 256  # header or SDP lines read per message
MAX_TEXT = 200  # characters kept of any header value
MAX_LIST = 32  # entries kept per details list
MAX_B64 = 8192
REQUEST = re.compile(r"^([A-Z]{3,12}) (\S{1,1024}) SIP/2\.0$")
STATUS = re.compile(r"^SIP/2\.0 (\d{3})(?: (.*))?$")
MIKEY_TYPES = {0: "Initiator's PSK", 1: "Verification (PSK)", 2: "Initiator's public key", 3: "Verification (PK)",
               4: "Initiator's DH", 5: "Responder's DH", 6: "Error", 7: "Initiator's DHHMAC",
               8: "Responder's DHHMAC", 9: "Initiator's RSA-R", 10: "Responder's RSA-R"}


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    if (sport in PORTS or dport in PORTS) and payload[:8] == b"SIP/2.0 ":
        return False  # a response: sent by the server side
    head = payload[:12].split(b" ", 1)[0]
    if (sport in PORTS or dport in PORTS) and head.decode("latin-1") in METHODS:
        return True
    return None


def _clip(value: str) -> str:
    return value.strip()[:MAX_TEXT]


def _messages(view: FlowView) -> list[tuple[int, bytes]]:
    """(frame, message bytes): one per UDP datagram; split on Content-Length in a TCP stream."""
    if view.proto == "udp":
        return [(s.frame, s.payload) for s in view.samples if _looks_like_sip(s.payload)]
    out = []
    for from_orig in (True, False):
        data, marks = view.stream(from_orig)
        off = 0
        while off < len(data) and len(out) < MAX_MESSAGES:
            while data[off:off + 2] == b"\r\n":  # keep-alive CRLFs (RFC 5626)
                off += 2
            end = data.find(b"\r\n\r\n", off, off + 65536)
            if end < 0 or not _looks_like_sip(data[off:off + 16]):
                break
            m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d{1,7})", data[off:end])
            size = end + 4 - off + (int(m.group(1)) if m else 0)
            out.append((frame_at(marks, off), data[off:off + size]))
            off += size
    return out


def _looks_like_sip(payload: bytes) -> bool:
    if payload[:8] == b"SIP/2.0 ":
        return True
    head = payload[:12].split(b" ", 1)[0]
    return head.decode("latin-1") in METHODS


def parse_message(raw: bytes) -> dict:
    """Start line, the headers this audit needs (lower-case names, compact forms expanded) and the body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if not _:
        head, _, body = raw.partition(b"\n\n")
    lines = head.decode("utf-8", errors="backslashreplace").splitlines()[:MAX_LINES]
    if not lines:
        raise ValueError("empty message")
    msg: dict = {"method": None, "status": None, "headers": {}, "body": body}
    if m := REQUEST.match(lines[0]):
        msg["method"] = m.group(1)
    elif m := STATUS.match(lines[0]):
        msg["status"] = int(m.group(1))
    else:
        raise ValueError("not a SIP start line")
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        name = COMPACT.get(name, name)
        msg["headers"].setdefault(name, _clip(value))
    return msg


def parse_sdp(body: bytes) -> dict:
    """Media sections with their address, port, transport and keying attributes."""
    text = body.decode("utf-8", errors="backslashreplace")
    session_c: str | None = None
    media: list[dict] = []
    out: dict = {"media": media, "crypto": [], "fingerprint": None, "mikey": [], "zrtp_hash": False}
    for n, line in enumerate(text.splitlines()):
        if n >= MAX_LINES:
            break
        kind, sep, value = line.strip().partition("=")
        if not sep or len(kind) != 1:
            continue
        if kind == "c":
            parts = value.split()
            addr = parts[2].split("/")[0] if len(parts) >= 3 and parts[0] == "IN" else None
            if media:
                media[-1]["addr"] = addr
            else:
                session_c = addr
        elif kind == "m":
            parts = value.split()
            if len(parts) >= 3 and parts[1].split("/")[0].isdigit():
                media.append({"media": _clip(parts[0])[:32], "port": int(parts[1].split("/")[0]),
                              "proto": _clip(parts[2])[:32], "fmts": parts[3:19], "addr": session_c})
        elif kind == "a":
            name, _, arg = value.partition(":")
            name = name.lower()
            if name == "crypto":
                fields = arg.split()
                if len(fields) >= 3:
                    out["crypto"].append((_clip(fields[1])[:64], fields[2]))
            elif name == "fingerprint":
                out["fingerprint"] = _clip(arg)
            elif name == "key-mgmt" and arg.lower().startswith("mikey "):
                out["mikey"].append(arg[6:].strip()[:MAX_B64])
            elif name == "zrtp-hash":
                out["zrtp_hash"] = True
    return out


def key_preview(key_params: str) -> str:
    """`inline:` and at most the first four characters of the key: enough to match, never enough to use."""
    method, _, key = key_params.partition(":")
    return f"{method[:16]}:{key[:4]}…"


def mikey_type(b64: str) -> str:
    """The MIKEY message's data type (RFC 3830 §6.1) from the base64 in a=key-mgmt."""
    raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=False)
    if len(raw) < 2 or raw[0] != 1:
        raise ValueError("not MIKEY version 1")
    return MIKEY_TYPES.get(raw[1], f"type {raw[1]}")


def _endpoint(addr: str | None, port: int) -> str | None:
    if not addr or not 0 < port < 65536:
        return None
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None  # a host name (or garbage): no address to give a row to


def inspect(view: FlowView, facts: Facts) -> None:
    if view.orig_p not in PORTS and view.resp_p not in PORTS:
        first = next((s.payload for s in view.samples if s.payload), b"")
        if not _looks_like_sip(first):
            return
    messages = _messages(view)
    if not messages:
        return
    methods: Counter = Counter()
    statuses: Counter = Counter()
    calls: list[str] = []
    seen_media: set[tuple] = set()
    d = facts.details
    for frame, raw in messages[:MAX_MESSAGES]:
        try:
            msg = parse_message(raw)
            h = msg["headers"]
            call_id = h.get("call-id", "")
            if msg["method"]:
                methods[msg["method"]] += 1
            else:
                statuses[msg["status"]] += 1
            if call_id and call_id not in calls and len(calls) < MAX_LIST:
                calls.append(call_id)
            for key, name in (("from", "sip_from"), ("to", "sip_to"), ("user-agent", "sip_user_agents"),
                              ("server", "sip_user_agents")):
                if h.get(key):
                    value = h[key].split(";tag=")[0] if key in ("from", "to") else h[key]
                    lst = d.setdefault(name, [])
                    if value not in lst and len(lst) < MAX_LIST:
                        lst.append(value)
            ctype = h.get("content-type", "").lower()
            if msg["body"] and ("sdp" in ctype or msg["body"].lstrip()[:4] == b"v=0"):
                _sdp(parse_sdp(msg["body"]), frame, call_id, facts, seen_media)
        except (ValueError, IndexError, binascii.Error, UnicodeError):
            facts.malformed += 1
    if not methods and not statuses:
        return
    facts.add_service("sip")
    d["sip_call_ids"] = calls
    d["sip_methods"] = dict(methods)
    d["sip_statuses"] = {str(k): v for k, v in sorted(statuses.items())}


def _sdp(sdp: dict, frame: int, call_id: str, facts: Facts, seen: set) -> None:
    """Media endpoints, keying and cleartext-media evidence from one SDP body."""
    d = facts.details
    media_list = d.setdefault("sdp_media", [])
    for m in sdp["media"]:
        addr = _endpoint(m["addr"], m["port"])
        if addr is None:
            continue  # port 0 is a declined stream; a host name gives no address
        transport = "tcp" if m["proto"].upper().startswith("TCP") else "udp"
        key = (addr, m["port"], transport, call_id)
        if key in seen or len(media_list) >= MAX_LIST:
            continue
        seen.add(key)
        secure = "SAVP" in m["proto"].upper() or bool(sdp["crypto"]) or bool(sdp["mikey"])
        media_list.append({"frame": frame, "call_id": call_id, "media": m["media"], "addr": addr,
                           "port": m["port"], "proto": m["proto"], "fmts": m["fmts"], "srtp": secure})
        facts.endpoints.append({"h": addr, "p": m["port"], "proto": transport, "role": "media", "frame": frame,
                                "via": "sdp", "call_id": call_id})
        if m["proto"].upper() == "RTP/AVP" and not sdp["crypto"] and not sdp["mikey"] and not sdp["zrtp_hash"]:
            note = f"media offered as plain RTP/AVP without SRTP keying (frame {frame})"
            if not any(f.startswith("media offered as plain RTP/AVP") for f in facts.findings):
                facts.findings.append(note)
    if sdp["crypto"]:
        suites = d.setdefault("sdes_suites", [])
        for suite, key_params in sdp["crypto"]:
            if suite not in suites and len(suites) < MAX_LIST:
                suites.append(suite)
        suite, key_params = sdp["crypto"][0]
        facts.mark_key_exchange("sdes", [frame])
        note = f"SRTP keys travelled in cleartext SDP (frame {frame}): {suite} {key_preview(key_params)}"
        if len(facts.findings) < MAX_LIST and note not in facts.findings:
            facts.findings.append(note)
    if sdp["fingerprint"]:
        d.setdefault("dtls_fingerprint", sdp["fingerprint"])
        d["srtp_keying_expected"] = "dtls-srtp"
    for b64 in sdp["mikey"][:4]:
        kind = mikey_type(b64)
        facts.mark_key_exchange("mikey", [frame])
        d.setdefault("mikey", kind)
        note = f"MIKEY key management ({kind}) in SDP (frame {frame})"
        if len(facts.findings) < MAX_LIST and note not in facts.findings:
            facts.findings.append(note)
    if sdp["zrtp_hash"]:
        d["srtp_keying_expected"] = "zrtp"


def link_media(rows: list[dict]) -> None:
    """Give flows whose (address, port) an SDP of the same capture announced the call's Call-ID and RTP service.

    The media flow itself may carry nothing RTP-like in its first samples (or be SRTP): the SDP is the evidence.
    """
    announced: dict[tuple[str, str, int], dict] = {}
    for r in rows:
        for m in (r.get("details") or {}).get("sdp_media", []):
            transport = "tcp" if m["proto"].upper().startswith("TCP") else "udp"
            announced.setdefault((r["capture"], transport, m["addr"], m["port"]), m)
    if not announced:
        return
    for r in rows:
        if r.get("orig_p") is None or "sip" in (r.get("service") or ""):
            continue
        m = (announced.get((r["capture"], r["proto"], r["resp_h"], r["resp_p"]))
             or announced.get((r["capture"], r["proto"], r["orig_h"], r["orig_p"])))
        if m is None and "rtcp" in (r.get("service") or ""):  # RTCP on the next port up (RFC 3550 §11)
            m = (announced.get((r["capture"], r["proto"], r["resp_h"], r["resp_p"] - 1))
                 or announced.get((r["capture"], r["proto"], r["orig_h"], r["orig_p"] - 1)))
            if m is not None:
                r["details"] = dict(r.get("details") or {}, sip_call_id=m["call_id"], sdp_frame=m["frame"])
            continue
        if m is None:
            continue
        r["details"] = dict(r.get("details") or {}, sip_call_id=m["call_id"], sdp_frame=m["frame"])
        services = [s for s in (r.get("service") or "").split(",") if s]
        kind = "srtp" if m["srtp"] else "rtp"
        if m["media"] in ("audio", "video") and not {"rtp", "srtp"} & set(services):
            services.append(kind)
        elif kind == "srtp" and "rtp" in services:
            services[services.index("rtp")] = "srtp"
        r["service"] = ",".join(services) or None
