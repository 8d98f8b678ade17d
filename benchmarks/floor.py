"""`callaudit audit` with whole stages switched off, to show what the rest costs (`run.py --floor`).

    python benchmarks/floor.py dissection,report audit CAPTURE --format json --out OUT

The first argument is "none" or a comma-separated list of stages to switch off:
- dissection: no protocol module looks at any flow (every flow's facts stay empty);
- report: the JSON report is not written (an empty object is).

The rest are callaudit's own arguments. Its output is wrong by design: only the wall time means anything.
"""

from __future__ import annotations

import sys

STAGES = ("dissection", "report")


def main() -> None:
    off = set(sys.argv[1].split(",")) - {"none"}
    if off - set(STAGES):
        raise SystemExit(f"floor.py: unknown stages {sorted(off - set(STAGES))}; known: none, {', '.join(STAGES)}")
    if "dissection" in off:
        from analyzer import protocols

        protocols.inspect = lambda _view: protocols.Facts()
    if "report" in off:
        from analyzer.report import tabular

        tabular.write_json = lambda _audit, out: out.write("{}\n")
    from analyzer.cli import main as callaudit

    sys.argv = ["callaudit", *sys.argv[2:]]
    callaudit()


if __name__ == "__main__":
    main()
