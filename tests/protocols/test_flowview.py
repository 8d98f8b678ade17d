"""protocols.FlowView.stream: TCP reassembly; segments already in order take a shortcut with the same result."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from analyzer.protocols import FlowView, Sample


def _view(segments: list[tuple[int, int, bytes]]) -> FlowView:
    return FlowView("tcp", 50000, 443, [Sample(frame, 0.0, True, seq, data) for frame, seq, data in segments])


@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=12),
       st.integers(0, 0xFFFFFFFF), st.integers(1, 600), st.randoms(use_true_random=False))
def test_in_order_segments_give_what_the_general_reassembly_gives(pieces, isn, limit, rnd: random.Random):
    segments, seq = [], isn
    for frame, data in enumerate(pieces, 1):
        segments.append((frame, seq, data))
        seq = (seq + len(data)) & 0xFFFFFFFF  # wraps around 2**32 sometimes
    shuffled = segments[:]
    rnd.shuffle(shuffled)
    if len(shuffled) > 1 and shuffled == segments:
        shuffled.reverse()
    fast = _view(segments).stream(True, limit)
    general = _view(shuffled).stream(True, limit)  # out of frame order: the sorting path
    assert fast == general
    assert fast[0] == b"".join(pieces)[:limit]


def test_a_segment_out_of_order_after_the_limit_still_takes_the_general_path():
    """Earlier bytes seen last move the stream's start, even when the segments before them fill the limit."""
    view = _view([(1, 100, b"abcd"), (2, 104, b"efgh"), (3, 96, b"WXYZ")])
    assert view.stream(True, 4) == (b"WXYZ", [(0, 3)])
    assert view.stream(True) == (b"WXYZabcdefgh", [(0, 3), (4, 1), (8, 2)])


def test_a_retransmission_takes_the_general_path():
    view = _view([(1, 100, b"abcd"), (2, 104, b"efgh"), (3, 104, b"efgh"), (4, 108, b"ij")])
    assert view.stream(True) == (b"abcdefghij", [(0, 1), (4, 2), (8, 4)])


@given(st.binary(min_size=0, max_size=1500), st.sampled_from([53, 443, 3478, 5060, 8801, 50000]),
       st.sampled_from([53, 443, 3478, 5060, 8801, 40000]))
def test_modules_hint_only_where_they_say(payload, sport, dport):
    """HINT_PORTS and HINT_BYTES let role decisions skip a module's client_hint: it must have nothing to say."""
    from analyzer import protocols

    for mod in protocols._modules():
        ports, first = getattr(mod, "HINT_PORTS", None), getattr(mod, "HINT_BYTES", None)
        outside = (ports is not None and sport not in ports and dport not in ports) or \
            (first is not None and (not payload or payload[0] not in first))
        if outside or not getattr(mod, "ROLE_HINTS", True):
            assert mod.client_hint(payload, sport, dport) is None, mod.__name__


@given(st.binary(min_size=1, max_size=200))
def test_hinted_first_bytes_still_reach_the_module(tail):
    """A real ClientHello / QUIC long header start still reaches tls / quic through the byte filter."""
    from analyzer.protocols import quic, tls

    assert 0x16 in tls.HINT_BYTES and all(b in quic.HINT_BYTES for b in (0xC0, 0xFF)) and 0xBF not in quic.HINT_BYTES
    assert tls.client_hint(b"\x16\x03\x01\x00\x10\x01" + tail, 50000, 443) is True


@given(st.sampled_from(["tcp", "udp"]), st.sampled_from([53, 443, 3478, 5060, 8801, 50000]),
       st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=300)), min_size=1, max_size=6))
def test_modules_learn_nothing_outside_their_transports(proto, port, payloads):
    """PROTOS lets `inspect` skip a module for other transports: it must have nothing to say there."""
    from analyzer import protocols
    from analyzer.protocols import Facts

    samples = [Sample(i + 1, float(i), orig, 1000 + 400 * i, data) for i, (orig, data) in enumerate(payloads)]
    for mod in protocols._modules():
        if proto not in getattr(mod, "PROTOS", (proto,)):
            facts = Facts()
            mod.inspect(FlowView(proto, 50000, port, samples), facts)
            assert facts == Facts(), mod.__name__


@given(st.lists(st.integers(1, 50), max_size=12), st.integers(-5, 700))
def test_frame_at_is_the_last_mark_at_or_before_the_offset(gaps, offset):
    from analyzer.protocols import frame_at

    marks, at = [], 0
    for i, gap in enumerate(gaps):
        marks.append((at, 100 + i))
        at += gap
    want = marks[0][1] if marks else 0  # the linear walk the marks' consumers were written against
    for start, frame in marks:
        if start > offset:
            break
        want = frame
    assert frame_at(marks, offset) == want
