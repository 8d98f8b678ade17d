"""The `fuzz` marker: opt-in timed fuzz runs (`CALLAUDIT_FUZZ_SECONDS=60 pytest -m fuzz tests/fuzz`)."""


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "fuzz: time-bounded fuzz run, opt-in through CALLAUDIT_FUZZ_SECONDS")
