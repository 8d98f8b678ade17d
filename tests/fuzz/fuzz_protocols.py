"""libFuzzer (atheris) entry point for every protocol module in `analyzer.protocols.MODULES`.

Run: python -m tests.fuzz.fuzz_protocols [libFuzzer flags] WORK_CORPUS SEED_CORPUS
"""

from __future__ import annotations

import importlib
import sys

# scapy itself is left uninstrumented: it triples the cost of an input, and the modules catch its errors.
INSTRUMENT = ["analyzer.protocols"]


def one_input(data: bytes) -> None:
    from tests.fuzz.targets import protocols_target

    protocols_target(data)


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENT):
        from tests.fuzz import targets

        for name in [
            "scapy.layers.dns",
            "scapy.layers.tls.all",
            *(f"analyzer.protocols.{m}" for m in targets.module_names()),
        ]:
            importlib.import_module(name)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
