"""Measure `callaudit audit` against tshark's conversation table and scapy's PcapReader on the same files.

    python benchmarks/run.py                      # call + busy workloads (generated once into --workdir)
    python benchmarks/run.py --big 4              # also a capture of the call's records 4x (~2.9 GB)
    python benchmarks/run.py --scapy-limit 0      # scapy on every packet (minutes)
    python benchmarks/run.py --flows 100000,300000  # also busy captures of 10 packets a flow: memory per flow
    python benchmarks/run.py --floor              # also busy with dissection and the report switched off

Prints, per workload and tool: median wall time over --repeat runs, packets/s, peak RSS (from
/usr/bin/time, else getrusage of the children) and the ratio to callaudit; checks that all three count
the same flows (scapy on a prefix of --scapy-limit packets, compared with callaudit's reader on that prefix,
and its time extrapolated linearly, clearly labelled). Then `--jobs` scaling over several captures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None

SCAPY_LOOP = r"""
import sys, time
from scapy.utils import PcapReader
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
limit = int(sys.argv[2]); flows = set(); n = 0
t = time.perf_counter()
with PcapReader(sys.argv[1]) as r:
    for pkt in r:
        n += 1
        ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
        l4 = pkt.getlayer(TCP) or pkt.getlayer(UDP)
        if ip is not None and l4 is not None:
            a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
            flows.add((l4.name, min(a, b), max(a, b)))
        if limit and n >= limit:
            break
print(n, len(flows), time.perf_counter() - t)
"""


def audit(target: Path, out: Path) -> list[str]:
    """The command that audits `target` with this checkout's analyzer (see AUDIT_ENV), JSON to `out`."""
    return [sys.executable, "-m", "analyzer", "audit", str(target), "--format", "json", "--out", str(out)]


AUDIT_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one command."""
    if TIME:
        t = time.perf_counter()
        p = subprocess.run([TIME, "-f", "@@ %M", *cmd], capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - t
        m = re.search(r"@@ (\d+)", p.stderr)
        rss = int(m.group(1)) / 1024 if m else float("nan")
    else:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - t
        rss = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    if p.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {p.stderr[-2000:]}")
    return wall, rss, p.stdout


def packets_in(path: Path) -> int:
    from analyzer.capture import CaptureStats
    from analyzer.fastpath import read_table

    stats = CaptureStats(str(path))
    read_table(path, stats)
    return stats.frames


def prefix(path: Path, count: int, out: Path) -> Path:
    """The first `count` records of a classic pcap."""
    with open(path, "rb") as src, open(out, "wb") as dst:
        dst.write(src.read(24))
        for _ in range(count):
            hdr = src.read(16)
            if len(hdr) < 16:
                break
            caplen = struct.unpack("<I", hdr[8:12])[0]
            dst.write(hdr + src.read(caplen))
    return out


def callaudit_flows(doc: dict) -> int:
    return sum(1 for f in doc["flows"] if not str(f.get("role_evidence") or "").startswith("revealed"))


def bench(path: Path, packets: int, args: argparse.Namespace, work: Path) -> list[dict]:
    out = work / (path.stem + ".json")
    rows = []
    runs = [timed(audit(path, out), AUDIT_ENV) for _ in range(args.repeat)]
    doc = json.loads(out.read_text())
    ours = callaudit_flows(doc)
    rows.append({"tool": "callaudit audit (all stages, JSON written)", "wall": statistics.median(r[0] for r in runs),
                 "rss": max(r[1] for r in runs), "flows": ours, "packets": packets})
    if shutil.which("tshark"):
        runs = [timed(["tshark", "-n", "-r", str(path), "-q", "-z", "conv,udp", "-z", "conv,tcp"])
                for _ in range(args.repeat)]
        convs = sum(1 for line in runs[-1][2].splitlines() if "<->" in line)
        rows.append({"tool": "tshark -q -z conv,udp -z conv,tcp", "wall": statistics.median(r[0] for r in runs),
                     "rss": max(r[1] for r in runs), "flows": convs, "packets": packets})
    limit = args.scapy_limit if args.scapy_limit and args.scapy_limit < packets else 0
    part = prefix(path, limit, work / "prefix.pcap") if limit else path
    wall, rss, stdout = timed([sys.executable, "-c", SCAPY_LOOP, str(part), str(limit)])
    n, flows, loop = stdout.split()
    n, flows, loop = int(n), int(flows), float(loop)
    ref = len(_table(part).flows) if limit else ours
    label = f"scapy PcapReader loop ({n} packets, extrapolated)" if limit else "scapy PcapReader loop"
    rows.append({"tool": label, "wall": wall * packets / n if limit else wall, "rss": rss, "flows": flows,
                 "packets": packets, "check": ref})
    return rows


def _table(path: Path):
    from analyzer.fastpath import read_table

    return read_table(path)


def floor(path: Path, call: float, work: Path, repeat: int) -> list[tuple[str, float]]:
    """Median wall time of auditing `path` with whole stages switched off (`floor.py`): what the busy workload
    costs beyond protocol dissection and the report, and its ratio to the call's full audit (`call` s)."""
    rows = []
    for stages in ("none", "dissection", "dissection,report"):
        cmd = [sys.executable, str(HERE / "floor.py"), stages, *audit(path, work / "floor.json")[3:]]
        wall = statistics.median(timed(cmd, AUDIT_ENV)[0] for _ in range(repeat))
        rows.append((stages, wall, wall / call))
    return rows


def jobs_scaling(path: Path, copies: int, work: Path, repeat: int) -> list[tuple[str, float]]:
    """Median wall time of auditing `copies` captures: on one core (pinned with taskset, where there is
    one: no forked reader or dissector either), then on every core with --jobs 1 and --jobs 2."""
    folder = work / "many"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for i in range(copies):
        os.symlink(path, folder / f"call{i}.pcap")
    cmd = audit(folder, work / "many.json")
    runs = [("one core, --jobs 1", ["taskset", "-c", "0", *cmd, "--jobs", "1"] if shutil.which("taskset") else None),
            ("all cores, --jobs 1", [*cmd, "--jobs", "1"]), ("all cores, --jobs 2", [*cmd, "--jobs", "2"])]
    return [(label, statistics.median(timed(c, AUDIT_ENV)[0] for _ in range(repeat))) for label, c in runs if c]


def startup(work: Path, repeat: int) -> float:
    """Median wall time of auditing the bundled sample capture (a few hundred packets): the fixed cost of
    starting Python, typer, pandas and the GeoIP databases, which every audit pays."""
    cmd = audit(ROOT / "pcaps" / "zoom_call.pcap", work / "sample.json")
    return statistics.median(timed(cmd, AUDIT_ENV)[0] for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "callaudit-bench")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported")
    ap.add_argument("--scapy-limit", type=int, default=20_000, help="packets scapy reads (0: all)")
    ap.add_argument("--big", type=int, default=0, help="also audit the call's records repeated this many times")
    ap.add_argument("--jobs-copies", type=int, default=8, help="captures in the --jobs scaling run (0: skip)")
    ap.add_argument("--flows", default="", help="comma-separated flow counts: busy captures of 10 packets a flow "
                    "(memory grows with flows, not packets)")
    ap.add_argument("--floor", action="store_true", help="also the busy audit with protocol dissection, then "
                    "also the report, switched off: the cost of everything else a flow needs")
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    files = {}
    for name in ("call", "busy"):
        path = work / f"{name}-{args.packets}.pcap"
        if not path.exists():
            subprocess.run([sys.executable, str(HERE / "gen_capture.py"), name, str(path), "--packets",
                            str(args.packets)], check=True)
        files[name] = path
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other work skews figures)")
    results = {}
    for name, path in files.items():
        rows = bench(path, args.packets, args, work)
        results[name] = rows
        base = rows[0]["wall"]
        size = path.stat().st_size / 1e6
        print(f"\n{name}: {path} ({args.packets} packets, {size:.0f} MB), median of {args.repeat}")
        print(f"{'tool':58} {'wall s':>8} {'pkts/s':>11} {'peak MB':>8} {'flows':>7} {'x callaudit':>11}")
        for r in rows:
            flows = f"{r['flows']}" + (f" (ours {r['check']})" if "check" in r and r["check"] != r["flows"] else "")
            print(f"{r['tool']:58} {r['wall']:8.2f} {r['packets'] / r['wall']:11,.0f} {r['rss']:8.0f} "
                  f"{flows:>7} {r['wall'] / base:11.1f}")
        agree = rows[0]["flows"] == rows[1]["flows"] if len(rows) > 2 else True
        scapy_ok = rows[-1]["flows"] == rows[-1]["check"]
        print(f"flow counts agree: callaudit vs tshark {agree}; scapy vs callaudit's reader on the same packets "
              f"{scapy_ok}")
    if len(results) == 2:
        ratio = results["busy"][0]["wall"] / results["call"][0]["wall"]
        print(f"\nbusy / call wall time: {ratio:.2f} (target <= 2)")
    if args.floor and len(results) == 2:
        print(f"\nbusy with stages switched off (median of {args.repeat}; output wrong by design):")
        for stages, wall, ratio in floor(files["busy"], results["call"][0]["wall"], work, args.repeat):
            print(f"  off: {stages:20} {wall:6.2f} s  {ratio:5.2f}x the call")
    if args.big:
        big = work / f"call-x{args.big}.pcap"
        if not big.exists():
            subprocess.run([sys.executable, str(HERE / "gen_capture.py"), "call", str(big), "--packets",
                            str(args.packets), "--repeat", str(args.big)], check=True)
        wall, rss, _ = timed(audit(big, work / "big.json"), AUDIT_ENV)
        n = args.packets * args.big
        print(f"\nbig: {big.stat().st_size / 1e9:.1f} GB, {n} packets: {wall:.1f} s, {n / wall:,.0f} pkts/s, "
              f"peak {rss:.0f} MB")
    if args.flows:
        print("\nbusy captures of 10 packets a flow (one run each):")
        peaks = []
        for flows in (int(n) for n in args.flows.split(",")):
            path = work / f"busy-{flows}-flows.pcap"
            if not path.exists():
                subprocess.run([sys.executable, str(HERE / "gen_capture.py"), "busy", str(path), "--packets",
                                str(flows * 10), "--flows", str(flows)], check=True, stdout=subprocess.DEVNULL)
            wall, rss, _ = timed(audit(path, work / "flows.json"), AUDIT_ENV)
            print(f"  {flows:>9,} flows: {wall:6.1f} s, peak {rss:5.0f} MB")
            peaks.append((flows, rss))
        if len(peaks) > 1 and peaks[-1][0] != peaks[0][0]:
            slope = (peaks[-1][1] - peaks[0][1]) * 1e3 / (peaks[-1][0] - peaks[0][0])
            print(f"  peak memory grows {slope:.2f} KB with each flow")
    print(f"\nstart-up floor (the bundled sample capture, all stages): {startup(work, args.repeat):.2f} s")
    if args.jobs_copies:
        scale = jobs_scaling(files["call"], args.jobs_copies, work, args.repeat)
        base = scale[0][1]
        print(f"\n{args.jobs_copies} call captures in one audit:")
        for label, wall in scale:
            print(f"  {label:22} {wall:6.2f} s  {base / wall:5.2f}x")


if __name__ == "__main__":
    main()
