"""Every crash the fuzzers found, replayed as a regression test; plus a short seeded run of each target.

Long runs: `python -m tests.fuzz --seconds 1800 --log fuzz.jsonl` (see tests/fuzz/__main__.py);
`CALLAUDIT_FUZZ_SECONDS=60 pytest -m fuzz` runs the random mutator inside pytest for that long.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz import engine, seeds, targets
from tests.fuzz.fuzz_capture import one_input as capture_input
from tests.fuzz.fuzz_protocols import one_input as protocols_input

CORPUS = Path(__file__).resolve().parent / "corpus"
REPLAY = {"capture": capture_input, "protocols": protocols_input}


def _corpus() -> list[tuple[str, Path]]:
    return [(t, p) for t in REPLAY for p in sorted((CORPUS / t).glob("*")) if p.is_file()]


@pytest.mark.parametrize("target, path", _corpus(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_reproducer_no_longer_crashes(target, path):
    REPLAY[target](path.read_bytes())


@pytest.mark.parametrize(
    "target, path",
    [(t, p) for t, p in _corpus() if t == "capture"],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_capture_reproducer_through_every_report(target, path):
    targets.capture_target(path.read_bytes(), render=True)


def test_corpus_is_not_empty():
    assert len(_corpus()) >= 2


def test_protocol_modules_are_discovered():
    from analyzer.protocols import MODULES

    assert targets.module_names() == list(MODULES) and {"dns", "tls"} <= set(MODULES)
    assert {53, 443} <= set(targets.interesting_ports())


def test_flow_encoding_round_trips():
    data = targets.encode_flow("tcp", 50000, 443, [(True, b"\x16\x03\x01"), (False, b"\x16\x03\x03x")])
    view = targets.decode_flow(data)
    assert (view.proto, view.orig_p, view.resp_p) == ("tcp", 50000, 443)
    assert [(s.from_orig, s.payload) for s in view.samples] == [
        (True, b"\x16\x03\x01"),
        (False, b"\x16\x03\x03x"),
    ]
    assert view.stream(True)[0] == b"\x16\x03\x01"  # sequence numbers wrap around 2**32 and still join
    assert targets.decode_flow(b"").samples == []


def test_seeds_cover_every_shared_capture():
    names = {name.rsplit("-", 1)[0] for name, _ in seeds.capture_seeds()}
    assert {p.stem for p in seeds.seed_files()} <= names


def _budget(default: float) -> float:
    return float(os.environ.get("CALLAUDIT_FUZZ_SECONDS", default))


@pytest.mark.parametrize("target", ["capture", "protocols"])
def test_short_seeded_fuzz_run(target):
    """Some seeds and 150 mutations of them per target in every test run, so the harness cannot rot."""
    if target == "capture":
        inputs = [d for _, d in seeds.capture_seeds()][::4]
        fn = capture_input
    else:
        inputs = [d for _, d in seeds.protocol_seeds(per_capture=4)]
        fn = protocols_input
    res = engine.run(target, fn, inputs, seconds=300, seed=1234, max_inputs=len(inputs) + 150, save=False)
    assert res.inputs == len(inputs) + 150 and not res.crashes, res.crashes


@pytest.mark.fuzz
@pytest.mark.parametrize("target", ["capture", "protocols"])
def test_bounded_fuzz(target):
    """Opt-in (`-m fuzz`): the random mutator for CALLAUDIT_FUZZ_SECONDS (default 60) per target."""
    if "CALLAUDIT_FUZZ_SECONDS" not in os.environ:
        pytest.skip("set CALLAUDIT_FUZZ_SECONDS to run the bounded fuzz test")
    inputs = [d for _, d in (seeds.capture_seeds() if target == "capture" else seeds.protocol_seeds())]
    fn = capture_input if target == "capture" else protocols_input
    res = engine.run(target, fn, inputs, seconds=_budget(60.0), seed=int.from_bytes(os.urandom(4), "big"))
    assert not res.crashes, f"reproducers saved: {res.crashes}"
