"""libFuzzer (atheris) entry point for the capture reader and the per-capture pipeline.

Run: python -m tests.fuzz.fuzz_capture [libFuzzer flags] WORK_CORPUS SEED_CORPUS
(`python -m tests.fuzz` wraps this with a time bound, seeds and the random-mutator fallback.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

INSTRUMENT = ["analyzer", "scapy.layers.dns", "scapy.layers.tls"]


def one_input(data: bytes) -> None:
    from tests.fuzz.engine import render_sometimes
    from tests.fuzz.targets import capture_target, fastpath_target

    capture_target(data, render=render_sometimes(data))
    fastpath_target(data)


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENT):
        from tests.fuzz import targets

        for name in [
            "analyzer.pipeline",
            "analyzer.report.tabular",
            "analyzer.report.terminal",
            *(f"analyzer.protocols.{m}" for m in targets.module_names()),
        ]:
            importlib.import_module(name)
        if importlib.util.find_spec("analyzer.fastpath"):
            importlib.import_module("analyzer.fastpath")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
