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


def test_a_retransmission_takes_the_general_path():
    view = _view([(1, 100, b"abcd"), (2, 104, b"efgh"), (3, 104, b"efgh"), (4, 108, b"ij")])
    assert view.stream(True) == (b"abcdefghij", [(0, 1), (4, 2), (8, 4)])
