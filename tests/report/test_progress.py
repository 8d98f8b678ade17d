"""The progress bar: off unless a person watches stderr; when on, it follows analyze() to the end."""

from __future__ import annotations

import io

from analyzer.jurisdiction import policy_from_expect
from analyzer.pipeline import analyze
from analyzer.report import progress
from tests.conftest import CAPTURES, SAMPLES


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_when_stderr_is_not_a_terminal(monkeypatch):
    assert not progress.enabled(io.StringIO())
    monkeypatch.setenv("TERM", "xterm")
    assert progress.enabled(Tty())
    monkeypatch.setenv("TERM", "dumb")
    assert not progress.enabled(Tty())
    with progress.bar([SAMPLES / "zoom_call.pcap"], show=False) as cb:
        assert cb is None


def test_analyze_reports_every_capture_and_long_ones_midway(geo):
    calls = []
    big = max(CAPTURES.glob("*.pcap*"), key=lambda p: p.stat().st_size)
    paths = [SAMPLES / "zoom_call.pcap", big]
    audit = analyze(paths, geo, policy_from_expect("US"), progress=lambda *a: calls.append(a))
    finished = [c for c in calls if c[3]]
    assert [c[0] for c in finished] == [str(p) for p in paths]
    assert [c[1] for c in finished] == [c.frames for c in audit.captures]
    if audit.captures[1].frames > 4096:  # updates come every 4096 packets
        midway = [c for c in calls if not c[3]]
        assert midway and all(0 < c[2] for c in midway)


def test_bar_runs_to_the_end(geo):
    paths = [SAMPLES / "zoom_call.pcap", SAMPLES / "webrtc_relay.pcapng"]
    with progress.bar(paths, show=True) as cb:
        analyze(paths, geo, None, progress=cb)


def test_rich_is_not_loaded_when_no_bar_is_shown(tmp_path):
    """An audit written to a file with stderr not a terminal never imports rich (~25 ms of start-up)."""
    import subprocess
    import sys

    code = ("import sys; from analyzer.cli import main\n"
            f"sys.argv = ['callaudit', 'audit', {str(SAMPLES / 'zoom_call.pcap')!r}, '--format', 'json', "
            f"'--out', {str(tmp_path / 'out.json')!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]" and (tmp_path / "out.json").stat().st_size > 0
