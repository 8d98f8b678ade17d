"""Bounded fuzz run for CI and for long sessions: `python -m tests.fuzz --seconds 120`.

Uses atheris (coverage-guided libFuzzer) when it is installed, else the built-in random mutator. The time
is split between the targets; crashes are copied to tests/fuzz/corpus/<target>/ and the exit status is 1.
Each run appends one JSON line (target, engine, seconds, inputs, crashes) to --log, so the total fuzzing
time and input count can be quoted; `--summary` prints those totals.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.engine import CORPUS, HANG_SECONDS, MAX_LEN

TARGETS = ("capture", "protocols")
ROOT = Path(__file__).resolve().parents[2]


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _seed_dir(target: str, base: Path) -> Path:
    from tests.fuzz.seeds import write_seeds

    folder = base / f"seeds-{target}"
    if not folder.is_dir() or not any(folder.iterdir()):
        write_seeds(target, folder)
    return folder


def run_atheris(target: str, seconds: int, base: Path) -> dict:
    seeds = _seed_dir(target, base)
    work = base / f"work-{target}"
    work.mkdir(parents=True, exist_ok=True)
    artifacts = base / f"artifacts-{target}"
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    cmd = [
        sys.executable,
        "-m",
        f"tests.fuzz.fuzz_{target}",
        f"-max_total_time={seconds}",
        f"-timeout={int(HANG_SECONDS)}",
        "-rss_limit_mb=4096",
        f"-max_len={MAX_LEN}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        str(work),
        str(seeds),
    ]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, check=False, cwd=ROOT, capture_output=True, text=True, errors="replace", timeout=seconds + 600
    )
    took = time.monotonic() - start
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    done = re.findall(r"Done (\d+) runs", proc.stderr)
    inputs = int(runs[-1]) if runs else int(done[-1]) if done else 0
    crashes = []
    for art in sorted(set(artifacts.iterdir()) - before):
        dest = CORPUS / target / art.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(art, dest)
        crashes.append(str(dest.relative_to(ROOT)))
    if proc.returncode != 0 and not crashes:
        crashes.append(f"libFuzzer exit {proc.returncode}")
    if crashes:
        sys.stderr.write(proc.stderr[-8000:])
    return {
        "target": target,
        "engine": "atheris",
        "seconds": round(took, 1),
        "inputs": inputs,
        "corpus": sum(1 for _ in work.iterdir()),
        "crashes": crashes,
    }


def run_random(target: str, seconds: int, seed: int) -> dict:
    from tests.fuzz import engine, seeds, targets

    if target == "capture":
        inputs = [d for _, d in seeds.capture_seeds()]

        def fn(data: bytes) -> None:
            targets.capture_target(data, render=engine.render_sometimes(data))
    else:
        inputs = [d for _, d in [*seeds.protocol_seeds(), *seeds.crafted_protocol_seeds()]]
        fn = targets.protocols_target
    res = engine.run(target, fn, inputs, seconds, seed=seed)
    return {
        "target": target,
        "engine": "random",
        "seconds": round(res.seconds, 1),
        "inputs": res.inputs,
        "crashes": [str(p) for p in res.crashes],
    }


def summary(log: Path) -> str:
    totals: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        t = totals.setdefault(f"{rec['target']}/{rec['engine']}", [0, 0, 0, 0])
        t[0] += rec["seconds"]
        t[1] += rec["inputs"]
        t[2] += len(rec["crashes"])
        t[3] += 1
    lines = [
        f"{k}: {v[0] / 60:.1f} min, {int(v[1])} inputs, {int(v[2])} crash runs, {int(v[3])} runs"
        for k, v in sorted(totals.items())
    ]
    all_s = sum(v[0] for v in totals.values())
    all_n = sum(v[1] for v in totals.values())
    return "\n".join(lines + [f"total: {all_s / 60:.1f} min, {int(all_n)} inputs"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=120, help="total time, split between the targets")
    ap.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    ap.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "callaudit-fuzz",
        help="seeds, growing corpus and libFuzzer artifacts (kept between runs)",
    )
    ap.add_argument("--log", type=Path, help="append one JSON line per target run here")
    ap.add_argument("--seed", type=int, default=int(time.time()), help="random engine seed")
    ap.add_argument("--summary", action="store_true", help="print the totals of --log and exit")
    args = ap.parse_args(argv)
    if args.summary:
        print(summary(args.log))
        return 0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _have_atheris() else "random"
    targets = TARGETS if args.target == "all" else (args.target,)
    share = max(5, args.seconds // len(targets))
    os.environ.setdefault("PYTHONHASHSEED", "0")
    failed = False
    for target in targets:
        if engine == "atheris":
            rec = run_atheris(target, share, args.work)
        else:
            rec = run_random(target, share, args.seed)
        rec["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        print(json.dumps(rec))
        if args.log:
            with open(args.log, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        failed |= bool(rec["crashes"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
