"""The `callaudit` command: parses options, calls the pipeline, renders. No logic of its own."""

from __future__ import annotations

import gc
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.errors import CallauditError

if TYPE_CHECKING:
    from analyzer.fastpath import ReadAhead

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Where did a call's traffic go? Offline jurisdiction audit of packet captures.")
GC_YOUNG = 20_000
CAPTURE_MAGICS = (b"\x0a\x0d\x0d\x0a", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                  b"\xa1\xb2\x3c\x4d")


@app.callback()
def _root() -> None:
    """Where did a call's traffic go? Offline jurisdiction audit of packet captures."""


class Format(str, Enum):
    terminal = "terminal"
    json = "json"
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"
    html = "html"


def _is_capture(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in CAPTURE_MAGICS or head[:2] == b"\x1f\x8b"


def _globbed(paths: list[Path]) -> list[Path]:
    """Glob patterns the shell left alone (quoted, or a shell that does not expand them), expanded here."""
    import glob

    out = []
    for p in paths:
        if not p.exists() and glob.has_magic(str(p)):
            found = sorted(glob.glob(str(p), recursive=True))
            if not found:
                raise CallauditError(f"{p}: the pattern matches no file")
            out += [Path(f) for f in found]
        else:
            out.append(p)
    return out


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders give the capture files inside them (recognised by magic number); globs too."""
    out = []
    for p in _globbed(paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and _is_capture(f))
            if not found:
                raise CallauditError(f"{p}: folder holds no pcap or pcapng files")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise CallauditError(f"{p}: no such file or folder")
    return out


@app.command()
def audit(
    captures: Annotated[list[Path], typer.Argument(
        help="Capture files (pcap, pcapng, .gz), folders, or glob patterns such as 'calls/**/*.pcap'.")],
    expect: Annotated[str | None, typer.Option(
        help="Expected countries: ISO codes and groups, e.g. US,CA or EU.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy TOML: expected, key_exchange, deny.")] = None,
    geoip: Annotated[list[Path] | None, typer.Option(
        help="Extra MMDB file or folder (repeatable); answers before the embedded DB-IP data.")] = None,
    local: Annotated[str | None, typer.Option(help="The capture host's address (default: the busiest).")] = None,
    vantage: Annotated[str | None, typer.Option(
        help="Where the capture was taken, for the speed-of-light check: a country code (US), lat,lon, or "
             "a public address (default: the capture host's public or STUN-mapped address).")] = None,
    require_registered: Annotated[bool, typer.Option(
        "--require-registered", help="Also require the network's registered country to be expected.")] = False,
    discover: Annotated[bool, typer.Option(
        help="Also use databases found by convention (GEOIPUPDATE_DB_DIR, GeoIP.conf, /usr/share/GeoIP).")
    ] = True,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.terminal,
    out: Annotated[Path | None, typer.Option(help="Write the report to this file.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1,
                                      help="Read this many captures at a time, one process each.")] = 1,
) -> None:
    """Audit captures: every server, its name and country, key exchange, and policy violations."""
    if expect and policy:
        raise CallauditError("give --expect or --policy, not both")
    if fmt is Format.parquet and out is None:
        raise CallauditError("--format parquet writes a binary file: give --out FILE.parquet")
    ahead = _read_ahead(captures)
    try:
        _audit(captures, expect, policy, geoip, local, vantage, require_registered, discover, fmt, out, jobs, ahead)
    finally:
        if ahead is not None:
            ahead.close()


_EARLY: list[ReadAhead] = []  # the read-ahead `main` started before the options were parsed, until `audit` takes it


def _read_ahead(captures: list[Path]) -> ReadAhead | None:
    """For one big pcap, a second process reading its second part (`fastpath.read_ahead`): the one `main`
    started when it names this capture, else one started now, while this process imports pandas and the rest."""
    early = _EARLY.pop() if _EARLY else None
    if early is not None and captures == [early.path]:
        return early
    if early is not None:
        early.close()
    from analyzer import fastpath

    return fastpath.read_ahead(captures[0]) if len(captures) == 1 and captures[0].is_file() else None


def _read_ahead_early(args: list[str]) -> None:
    """`audit` of one big pcap: start its read-ahead before typer loads pydantic and parses the options (~0.1 s
    sooner: ~0.08 s less on a 1M-packet call). A guess from the arguments that are capture files: `audit`
    uses it only if the parsed captures are exactly that file, and ends it otherwise."""
    if not args or args[0] != "audit":
        return
    named: list[Path] = []
    for arg in args[1:]:
        path = Path(arg)  # regular files only: a FIFO would block, or lose the bytes read from it
        if not arg.startswith("-") and path.is_file() and _is_capture(path):
            named.append(path)
            if len(named) > 1:  # several captures: no read-ahead (and no need to open the rest now)
                return
    if named:
        from analyzer import fastpath

        ahead = fastpath.read_ahead(named[0])
        if ahead is not None:
            _EARLY.append(ahead)


def _audit(captures: list[Path], expect: str | None, policy: Path | None, geoip: list[Path] | None,
           local: str | None, vantage: str | None, require_registered: bool, discover: bool, fmt: Format,
           out: Path | None, jobs: int, ahead: ReadAhead | None) -> None:
    """`audit` once its options are known (`ahead`: the capture's reading begun, or None)."""
    from analyzer.geo import GeoLookup
    from analyzer.jurisdiction import load_policy, policy_from_expect
    from analyzer.pipeline import analyze

    pol = load_policy(policy) if policy else policy_from_expect(expect) if expect else None
    if local:
        import ipaddress

        try:
            local = str(ipaddress.ip_address(local))
        except ValueError:
            raise CallauditError(f"--local {local!r} is not an IP address") from None
    if require_registered:
        if pol is None:
            raise CallauditError("--require-registered needs --expect or --policy")
        from dataclasses import replace

        pol = replace(pol, require_registered=True)
    from analyzer.geo import SearchPath
    from analyzer.location import parse_vantage

    geo = GeoLookup(geoip or [], search=SearchPath.default() if discover else None)
    try:
        place = parse_vantage(vantage, geo) if vantage else None
    except CallauditError:
        geo.close()
        raise
    try:
        from analyzer.report.progress import bar

        paths = expand(captures)
        with bar(paths) as progress:
            result = analyze(paths, geo, pol, vantage=place, local=local, progress=progress, jobs=jobs,
                             ahead=ahead)
    finally:
        geo.close()
    _emit(result, fmt, out)
    raise typer.Exit(1 if result.summary.get("violations") else 0)


@app.command()
def summarize(
    results: Annotated[list[Path], typer.Argument(help="Parquet files written by `audit --format parquet`.")],
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.terminal,
    out: Annotated[Path | None, typer.Option(help="Write the report to this file.")] = None,
) -> None:
    """Re-render saved audits (a campaign) without reading the captures again."""
    from analyzer.report.columnar import read_parquet

    result = read_parquet(_globbed(results))
    _emit(result, fmt, out)
    raise typer.Exit(1 if result.summary.get("violations") else 0)


class GeoFormat(str, Enum):
    terminal = "terminal"
    json = "json"


@app.command("geoip")
def geoip_command(
    addresses: Annotated[list[str] | None, typer.Argument(
        help="Addresses to look up in every database (optional).")] = None,
    geoip: Annotated[list[Path] | None, typer.Option(
        help="Extra MMDB file or folder (repeatable); answers before the embedded data.")] = None,
    discover: Annotated[bool, typer.Option(
        help="Also use databases found by convention (GEOIPUPDATE_DB_DIR, GeoIP.conf, /usr/share/GeoIP).")
    ] = True,
    fmt: Annotated[GeoFormat, typer.Option("--format", help="Output format.")] = GeoFormat.terminal,
) -> None:
    """List the GeoIP databases in use: where found, type, layout, build date, age, and which answers what."""
    from analyzer.geo import GeoLookup, SearchPath
    from analyzer.report.geoip import render_geoip

    geo = GeoLookup(geoip or [], search=SearchPath.default() if discover else None)
    try:
        render_geoip(geo, addresses or [], fmt.value)
    finally:
        geo.close()


def _emit(result, fmt: Format, out: Path | None) -> None:
    from analyzer.report import tabular

    if fmt is Format.terminal:
        from rich.console import Console

        from analyzer.report import campaign_terminal
        from analyzer.report.terminal import render as render_flows

        def render(audit, console: Console) -> None:
            render_flows(audit, console)
            if len(audit.captures) > 1:
                campaign_terminal.render(audit, console)

        if out:
            with open(out, "w", encoding="utf-8") as fh:
                render(result, Console(file=fh, width=200, no_color=True, highlight=False))
        else:
            # piped output is read in files and pagers: do not squeeze the table to 80 columns
            render(result, Console(highlight=False, width=None if sys.stdout.isatty() else 200))
        return
    if fmt is Format.parquet:
        from analyzer.report.columnar import write_parquet

        if out is None:
            raise CallauditError("--format parquet writes a binary file: give --out FILE.parquet")
        write_parquet(result, out)
        return
    if fmt in (Format.json, Format.csv):  # written as they are made: a 100k-flow report is ~150 MB of text
        write = tabular.write_json if fmt is Format.json else tabular.write_csv
        if out is None:
            write(result, sys.stdout)
            return
        try:
            with open(out, "w", encoding="utf-8") as fh:
                write(result, fh)
        except OSError as exc:
            raise CallauditError(f"cannot write {out}: {exc.strerror or exc}") from None
        return
    if fmt is Format.html:
        from analyzer.report.html import render as text_of
    else:
        from analyzer.report.columnar import to_jsonl as text_of
    text = text_of(result)
    if out:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CallauditError(f"cannot write {out}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)


def main() -> None:
    """Entry point: usage and input errors are one line on stderr and exit 2, never a traceback."""
    if not os.environ.get("CALLAUDIT_DEBUG"):  # parsers' complaints about hostile bytes are counted, not printed
        import logging
        import warnings

        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
        warnings.simplefilter("ignore")
    # a young-generation collection every 20k new objects instead of 700: a 100k-flow capture allocates
    # millions of short-lived samples and rows, and default collections cost ~15% of its CPU time
    # (cycles are still collected)
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    _read_ahead_early(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = 130
    except CallauditError as exc:
        from analyzer.report.escape import terminal  # file names in messages come from strangers too

        print(f"callaudit: error: {terminal(exc)}", file=sys.stderr)
        code = 2
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # never a traceback on a user; CALLAUDIT_DEBUG=1 shows it for a bug
        if hasattr(exc, "format_message"):  # typer's usage errors (from its vendored click)
            message = exc.format_message()
            print(message if type(exc).__name__ == "NoArgsIsHelpError"
                  else f"callaudit: error: {' '.join(message.split())}", file=sys.stderr)
        elif os.environ.get("CALLAUDIT_DEBUG"):
            raise
        else:
            print(f"callaudit: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 2
    finally:
        while _EARLY:  # not taken by `audit` (help, a usage error): ended
            _EARLY.pop().close()
    sys.exit(code if isinstance(code, int) else 0)
