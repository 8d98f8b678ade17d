"""libFuzzer (atheris) entry point for the capture reader and the per-capture pipeline.

Run: python -m tests.fuzz.fuzz_capture [libFuzzer flags] WORK_CORPUS SEED_CORPUS
(`python -m tests.fuzz` wraps this with a time bound, seeds and the random-mutator fallback.)
"""

from __future__ import annotations

import importlib
import sys

INSTRUMENT = ["analyzer", "scapy.layers.dns", "scapy.layers.tls"]


def one_input(data: bytes) -> None:
    from tests.fuzz.engine import render_sometimes
    from tests.fuzz.targets import capture_target

    capture_target(data, render=render_sometimes(data))


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENT):
        from tests.fuzz import targets

        for name in ["analyzer.pipeline", "analyzer.report.tabular", "analyzer.report.terminal",
                     *(f"analyzer.protocols.{m}" for m in targets.module_names())]:
            importlib.import_module(name)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
