"""benchmarks/floor.py really switches off the stages it names, and only those."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SAMPLES

SAMPLE = SAMPLES / "zoom_call.pcap"


def floor(stages: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "floor.py"), stages, "audit", str(SAMPLE),
                           "--format", "json", "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                          check=False)


def test_stages_switched_off(tmp_path):
    full, bare, none = tmp_path / "full.json", tmp_path / "bare.json", tmp_path / "none.json"
    assert floor("none", full).returncode == 0
    assert floor("dissection", bare).returncode in (0, 1)
    flows = json.loads(full.read_text())["flows"]
    assert any(f["key_exchange"] for f in flows)
    assert not any(f["key_exchange"] or f["service"] for f in json.loads(bare.read_text())["flows"])
    assert floor("dissection,report", none).returncode in (0, 1)
    assert none.read_text() == "{}\n"


def test_an_unknown_stage_is_refused(tmp_path):
    done = floor("geoip", tmp_path / "x.json")
    assert done.returncode != 0 and "unknown stages ['geoip']" in done.stderr
