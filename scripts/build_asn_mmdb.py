"""Build analyzer/data/geoip/asn.mmdb from the CC BY 4.0 npm package @ip-location-db/asn.

The package ships CSV ranges (RouteViews + the five RIRs + DB-IP ASN Lite, merged by ip-location-db). We
write them as an MMDB in the GeoLite2-ASN layout (autonomous_system_number, autonomous_system_organization)
with mmdb-writer, so geoip2's `asn()` reads it like MaxMind's file. The build date in the metadata is the
data's date (from the package version), not the time of the build, so the file is reproducible.

    python scripts/build_asn_mmdb.py                       # npm pack the pinned version, check, build
    python scripts/build_asn_mmdb.py --tarball asn.tgz     # from a tarball already fetched

Needs the test extra (mmdb-writer, netaddr); only the build needs them, not callaudit at run time.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "analyzer" / "data" / "geoip" / "asn.mmdb"
PACKAGE = "@ip-location-db/asn"
VERSION = "2.3.2026061719"
# sha256 of the npm tarball of VERSION (npm pack @ip-location-db/asn@2.3.2026061719)
SHA256 = "b9425daf2f011c28f8586685d4f89166e77627e2c15fd93c6262c3e2dead6153"
DATABASE_TYPE = "GeoLite2-ASN"  # geoip2.Reader.asn() accepts a file only when its type says so
DESCRIPTION = ("IP to ASN from @ip-location-db/asn {version}: RouteViews (routeviews.org), NRO RIR statistics "
               "(nro.net) and DB-IP ASN Lite (db-ip.com), CC BY 4.0; converted to MMDB by callaudit")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def npm_pack(package: str, version: str, into: Path) -> Path:
    """`npm pack name@version`: the registry by package name only, nothing else on the network."""
    done = subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=into, check=True,
                          capture_output=True, text=True)
    return into / done.stdout.strip().splitlines()[-1]


def checked(tarball: Path, expected: str) -> Path:
    actual = sha256(tarball)
    if actual != expected:
        sys.exit(f"{tarball}: sha256 {actual} does not match the pinned {expected}; refusing to build")
    return tarball


def version_date(version: str) -> datetime:
    """ip-location-db versions end in YYYYMMDDHH: the date the data was published."""
    stamp = version.rsplit(".", 1)[-1]
    return datetime.strptime(stamp[:8], "%Y%m%d").replace(tzinfo=UTC)


def read_ranges(tarball: Path) -> dict[tuple[int, str], list[tuple[str, str]]]:
    """(asn, organisation) -> [(first, last) address], from asn-ipv4.csv and asn-ipv6.csv."""
    groups: dict[tuple[int, str], list[tuple[str, str]]] = defaultdict(list)
    with tarfile.open(tarball, "r:gz") as tar:
        for name in ("package/asn-ipv4.csv", "package/asn-ipv6.csv"):
            member = tar.extractfile(name)
            if member is None:
                sys.exit(f"{tarball}: {name} missing")
            for first, last, asn, org in csv.reader(io.TextIOWrapper(member, encoding="utf-8")):
                groups[(int(asn), org.strip())].append((first, last))
    return groups


def build(tarball: Path, out: Path, version: str = VERSION) -> dict:
    """Write the MMDB; return what SOURCES.toml records about it."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPRange, IPSet

    date = version_date(version)

    class Writer(MMDBWriter):
        def _build_meta(self) -> dict:
            meta = super()._build_meta()
            meta["build_epoch"] = int(date.timestamp())
            return meta

    writer = Writer(ip_version=6, ipv4_compatible=True, database_type=DATABASE_TYPE, languages=["en"],
                    description=DESCRIPTION.format(version=version), int_type="u32")
    started = time.monotonic()
    groups = read_ranges(tarball)
    ranges = 0
    for (asn, org), spans in sorted(groups.items()):
        record = {"autonomous_system_number": asn}
        if org:
            record["autonomous_system_organization"] = org
        writer.insert_network(IPSet(IPRange(a, b) for a, b in spans), record)
        ranges += len(spans)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    writer.to_db_file(str(tmp))
    tmp.replace(out)
    return {
        "file": out.name, "package": PACKAGE, "version": version, "package_sha256": sha256(tarball),
        "sha256": sha256(out), "build_date": date.date().isoformat(), "ranges": ranges,
        "networks_asn": len(groups), "size_bytes": out.stat().st_size,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help="an npm tarball already fetched (still checked)")
    parser.add_argument("--version", default=VERSION, help="package version (with --sha256 when not pinned)")
    parser.add_argument("--sha256", default=None, help="expected tarball sha256 for --version")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    expected = args.sha256 or (SHA256 if args.version == VERSION else None)
    if expected is None:
        sys.exit(f"--version {args.version} is not pinned here: give its --sha256")
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or npm_pack(PACKAGE, args.version, Path(tmp))
        info = build(checked(tarball, expected), args.out, args.version)
    for key, value in info.items():
        print(f"{key} = {value}")


if __name__ == "__main__":
    main()
