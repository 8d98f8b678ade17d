"""analyze(): the one function the CLI and the tests call, from capture files to an Audit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analyzer import campaign, fastpath, forked, location, protocols
from analyzer import flows as flowmod
from analyzer.capture import CaptureStats
from analyzer.geo import GeoLookup
from analyzer.jurisdiction import Policy, apply_verdicts
from analyzer.memory import give_back
from analyzer.protocols.sip import link_media
from analyzer.vendors import attribute_columns

SCHEMA = 1
# progress(capture path, frames read, approximate bytes read or -1 when finished, finished)
Progress = Callable[[str, int, int, bool], None]
FLOW_COLUMNS = [
    "uid", "capture", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "service", "server_name",
    "server_name_source", "vendor", "vendor_evidence", "key_exchange", "key_frames", "first_frame",
    "first_ts", "last_ts", "duration", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes",
    "orig_ip_bytes", "resp_ip_bytes", "rtt_ms", "rtt_source", "role_evidence", "resp_scope", "resp_cc",
    "resp_registered_cc", "resp_represented_cc", "resp_represented_type", "resp_asn", "resp_org",
    "resp_lat", "resp_lon", "resp_accuracy_km", "is_anycast", "geo_agree", "geo_sources", "geo_db",
    "geo_db_date", "location_check", "location_reason", "verdict", "reason",
    "findings", "details",
]
INT_COLUMNS = ["orig_p", "resp_p", "first_frame", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes",
               "orig_ip_bytes", "resp_ip_bytes", "resp_asn"]
# Text columns (pandas' str dtype) hold the Python strings already made, not Arrow copies of them: on 100k
# flows that is ~70 MB less at the peak and no conversion time; the values and every report are the same.
STRING_STORAGE = "python"
VERDICT_ORDER = {"violation": 0, "suspect": 0.5, "unknown": 1, "ok": 2, "unchecked": 2, "anycast": 2,
                 "local": 3}
# Below this many rows, `_sorted` takes the rows in one `df.take` (two tables of a few MB at most): moving the
# ~50 columns one at a time costs ~18 ms whatever the size, 2% of a million-packet call's whole audit.
TAKE_ROWS = 20_000


@dataclass
class Audit:
    """Everything a report shows: what was read, which data judged it, and the flows with verdicts."""

    captures: list[CaptureStats]
    geoip: list[dict]
    policy: Policy | None
    flows: pd.DataFrame
    summary: dict = field(default_factory=dict)


# the keys of a row as `_dissect` and `_revealed` make them
ROW_KEYS = ("uid", "capture", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "service", "server_name",
            "server_name_source", "key_exchange", "key_frames", "first_frame", "first_ts", "last_ts", "duration",
            "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes", "orig_ip_bytes", "resp_ip_bytes", "rtt_ms",
            "rtt_source", "role_evidence", "findings", "details", "_revealed")


def analyze_capture(path: str | Path, local: str | None = None,
                    progress: Progress | None = None) -> tuple[CaptureStats, list[dict]]:
    """Read one capture: flows with protocol facts and names, before GeoIP and verdicts."""
    stats, cols = capture_columns(path, local, progress)
    cols = {k: _as_list(v) for k, v in cols.items()}
    return stats, [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def _as_list(values: list | np.ndarray) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else values


def _join(chunks: list[list | np.ndarray]) -> list | np.ndarray:
    """Pieces of one column as one: an array when every piece is one (numbers without missing values),
    else a list of Python values."""
    if chunks and all(isinstance(c, np.ndarray) for c in chunks):
        return np.concatenate(chunks)
    return [v for c in chunks for v in _as_list(c)]


def capture_columns(path: str | Path, local: str | None = None, progress: Progress | None = None,
                    split: bool = True, ahead: fastpath.ReadAhead | None = None,
                    ) -> tuple[CaptureStats, dict[str, list | np.ndarray]]:
    """`analyze_capture`'s rows as columns: a dict per flow costs ~1 KB, 100 MB on a 100k-flow capture.
    Counters, ports, frames and times are numpy arrays when no row lacks them (a Python number costs 28-32
    bytes, ~40 MB on 100k flows). `split`: dissect every other batch of flows in a forked process when
    there is a second core (`ahead`: the reading of its second part may have begun, see `fastpath.read_ahead`)."""
    stats = CaptureStats(str(path))  # stats.path: the name as valid Unicode, used in every report
    # = FlowTable.add over read_capture; with `split`, a big pcap is read by two processes
    batches = fastpath.read_flows(path, stats, stats.path, progress, parallel=split, ahead=ahead)
    if batches.unsampled:  # memory bound on hostile or huge captures: say what was not dissected
        stats.warnings.append(f"sample budget ({flowmod.SAMPLE_BYTES_TOTAL >> 20} MiB) reached: "
                              f"{batches.unsampled} payload packets not dissected")
    names: dict[str, tuple[str, int]] = {}  # address -> (name asked for, frame of the DNS answer)
    chunks: dict[str, list] = {k: [] for k in ROW_KEYS}
    same: dict[str, dict] = {}  # the repeated values kept so far (`_share_repeats`)
    try:
        # a bounded batch of flows (and their sampled payloads) at a time, merged in batch order
        for chunk, answers in _dissected(batches, stats.path, local, split):
            for addr, name, frame in answers:
                names.setdefault(addr, (name, frame))
            _share_repeats(chunk, same)  # as the rows pile up: on 300k flows their peak is the audit's
            for key in ROW_KEYS:
                chunks[key].append(chunk[key])
            del chunk
    finally:
        batches.close()
    del batches
    cols = {k: _join(v) for k, v in chunks.items()}
    del chunks
    give_back()  # the batches' payloads and temporaries
    cols = _dedupe_revealed(cols)
    if any("sdp_media" in d for d in cols["details"] if d):  # SDP-announced (address, port) -> the call's
        cols = {k: _as_list(v) for k, v in cols.items()}
        rows = [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]
        link_media(rows)  # Call-ID and rtp service
        cols["details"], cols["service"] = [r["details"] for r in rows], [r["service"] for r in rows]
    del cols["_revealed"]
    source, server_name = cols["server_name_source"], cols["server_name"]
    for i, h in enumerate(cols["resp_h"]):  # a name from DNS is weaker than an SNI, stronger than a certificate name
        dns = names.get(h)
        if dns and source[i] in (None, "cert"):
            server_name[i], source[i] = dns[0], "dns"
    return stats, cols


def _dissect(batch: flowmod.FlowColumns, capture: str, local: str | None,
             host: bytes | None) -> tuple[dict[str, list | np.ndarray], list[tuple]]:
    """One batch of flows: its rows as columns (each flow's revealed endpoints right after it) and the DNS
    answers its flows carry, in flow order."""
    cols, samples = flowmod.finish_columns(batch, capture, local, host)  # numbers as numpy arrays
    tcp_rtt, uids, orig_hs = cols.pop("tcp_rtt_ms"), cols["uid"], cols["orig_h"]
    facts_cols: dict[str, list] = {k: [] for k in ("service", "server_name", "server_name_source", "key_exchange",
                                                   "key_frames", "rtt_ms", "rtt_source", "findings", "details")}
    (service, server_name, source, key_exchange, key_frames, rtt_ms, rtt_source, findings,
     details) = (facts_cols[k].append for k in facts_cols)
    answers: list[tuple] = []
    revealed: list[tuple[int, list[dict]]] = []
    same: dict[tuple, dict] = {}
    inspect, view = protocols.inspect, protocols.FlowView
    for i, (proto, orig_p, resp_p, flow_samples, rtt) in enumerate(zip(
            cols["proto"], cols["orig_p"].tolist(), cols["resp_p"].tolist(), samples, tcp_rtt, strict=True)):
        facts = inspect(view(proto, orig_p, resp_p, flow_samples))
        answers += facts.dns_answers
        service(",".join(facts.services) or None)
        server_name(facts.server_name)
        source(facts.server_name_source)
        key_exchange(facts.key_exchange)
        key_frames(list(facts.key_frames))
        found = location.handshake_rtt(proto, rtt, flow_samples, facts.services)
        rtt_ms(found["rtt_ms"])
        rtt_source(found["rtt_source"])
        findings(list(facts.findings))
        # messages a protocol module recognised but could not dissect: counted, never silently dropped
        details(_shared({**facts.details, "malformed_messages": facts.malformed} if facts.malformed
                        else dict(facts.details), same))
        if facts.endpoints:
            revealed.append((i, _revealed(capture, orig_hs[i], uids[i], facts)))
    cols.update(facts_cols)
    cols["capture"] = [capture] * len(uids)
    cols["_revealed"] = [False] * len(uids)
    cols = {k: cols[k] for k in ROW_KEYS}
    if revealed:  # spliced in after the flow that reveals them (rows without counters: columns of lists)
        cols = {k: _as_list(v) for k, v in cols.items()}
        rows = [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]
        for i, extra in reversed(revealed):
            rows[i + 1:i + 1] = extra
        cols = {k: [r[k] for r in rows] for k in ROW_KEYS}
    return cols, answers


def _dissected(batches: fastpath.FlowBatches, capture: str, local: str | None,
               split: bool) -> Iterator[tuple[dict[str, list | np.ndarray], list[tuple]]]:
    """`_dissect` of every batch, in order; with `split`, a forked child dissects every other batch."""
    def dissect(part: Callable[[], flowmod.FlowColumns]) -> tuple[dict[str, list], list[tuple]]:
        return _dissect(part(), capture, local, batches.host)

    return forked.ordered_map(dissect, batches.parts, split)


_SIMPLE = frozenset({str, int, bool, type(None)})


def _shared(details: dict, same: dict[tuple, dict]) -> dict:
    """One object for equal `details` of simple values (the types kept apart, so 1 and True differ): the
    flows of a protocol have a few kinds, and a dict of its own costs ~300 bytes a row. Details are
    replaced, never changed in place, after this."""
    if all(type(v) in _SIMPLE for v in details.values()):
        return same.setdefault(tuple((k, type(v), v) for k, v in details.items()), details)
    return details


def _share_repeats(cols: dict[str, list | np.ndarray], same: dict[str, dict]) -> None:
    """One object for the values rows repeat: each batch of flows made its own address and name strings (on
    300k flows, 225k `orig_h` strings for 2k addresses) and every flow its own empty `findings` and
    `key_frames` lists (~70 bytes each): ~65 MB on 300k flows. `same`: the objects kept so far, per column,
    for the batches of one capture. Nothing changes a row's list after dissection (appending to one would
    change all)."""
    for key in ("orig_h", "resp_h", "server_name"):
        seen = same.setdefault(key, {})
        cols[key] = [seen.setdefault(v, v) if type(v) is str else v for v in cols[key]]
    for key in ("findings", "key_frames"):
        empty = same.setdefault(key, {}).setdefault("", [])
        cols[key] = [v if v else empty for v in cols[key]]


def _dedupe_revealed(cols: dict[str, list]) -> dict[str, list]:
    """A revealed endpoint gets a row only when no flow of the capture already talks to it."""
    revealed = cols["_revealed"]
    if not any(revealed):
        return cols
    keys = list(zip(cols["proto"], cols["resp_h"], cols["resp_p"], strict=True))
    seen = {key for key, r in zip(keys, revealed, strict=True) if not r}
    keep = []
    for i, (key, r) in enumerate(zip(keys, revealed, strict=True)):
        if r:
            if key in seen:
                continue
            seen.add(key)
        keep.append(i)
    return {k: [v[i] for i in keep] for k, v in cols.items()}


def _revealed(capture: str, orig_h: str, uid: str, facts: protocols.Facts) -> list[dict]:
    """Rows for endpoints a flow's payload reveals (TURN relay, STUN peer, SDP media address).

    They carry no packets of their own here, but a relay or peer in a forbidden country matters as much.
    """
    rows = []
    for ep in facts.endpoints:
        h, p, proto = ep["h"], int(ep["p"]), ep.get("proto", "udp")
        rows.append({
            "uid": flowmod.make_uid(capture, proto, (orig_h, 0), (h, p), ep["frame"]),
            "capture": capture, "proto": proto, "orig_h": orig_h, "orig_p": None,
            "resp_h": h, "resp_p": p, "service": ep.get("via"), "server_name": None,
            "server_name_source": None, "key_exchange": None, "key_frames": [ep["frame"]],
            "first_frame": ep["frame"], "first_ts": None, "last_ts": None, "duration": None,
            "orig_pkts": 0, "resp_pkts": 0, "orig_bytes": 0, "resp_bytes": 0, "orig_ip_bytes": 0,
            "resp_ip_bytes": 0, "rtt_ms": None, "rtt_source": None, "role_evidence": f"revealed-{ep['role']}",
            "findings": [(f"{ep['role']} {h}:{p} revealed by {ep.get('via')} in frame {ep['frame']} "
                          f"of flow {uid}")], "details": {"revealed_by": uid}, "_revealed": True,
        })
    return rows


def _read_all(paths: list[str | Path], local: str | None, progress: Progress | None, jobs: int,
              ahead: fastpath.ReadAhead | None) -> Iterator[tuple[CaptureStats, dict[str, list]]]:
    """(stats, row columns) per capture, in the order given; by `jobs` worker processes when there are several."""
    if jobs <= 1 or len(paths) <= 1:
        for path in paths:
            yield capture_columns(path, local, progress, ahead=ahead)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver/spawn would re-import pandas in every worker; fork shares what is already loaded
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=ctx) as pool:
        # one capture per core already: no forked dissector inside the workers
        yield from pool.map(capture_columns, paths, [local] * len(paths), [None] * len(paths), [False] * len(paths))


def analyze(paths: list[str | Path], geo: GeoLookup, policy: Policy | None,
            local: str | None = None, progress: Progress | None = None,
            vantage: location.Place | None = None, jobs: int = 1,
            ahead: fastpath.ReadAhead | None = None) -> Audit:
    """Read every capture, tag servers with GeoIP data, check locations against measured round trips
    (from `vantage`, else the capture host's public address), judge each flow against the policy.
    With `jobs` > 1, captures are read by that many processes (GeoIP and verdicts stay here). `ahead`: the
    reading of one of them begun already (`fastpath.read_ahead`); it is ended if no capture uses it."""
    try:
        with pd.option_context("mode.string_storage", STRING_STORAGE):
            return _analyze(paths, geo, policy, local, progress, vantage, jobs, ahead)
    finally:
        if ahead is not None:
            ahead.close()


def _analyze(paths: list[str | Path], geo: GeoLookup, policy: Policy | None, local: str | None,
             progress: Progress | None, vantage: location.Place | None, jobs: int,
             ahead: fastpath.ReadAhead | None) -> Audit:
    captures, chunks = [], {}
    for stats, capture_cols in _read_all(paths, local, progress, jobs, ahead):
        if progress is not None:
            progress(stats.path, stats.frames, -1, True)
        captures.append(stats)
        for key, values in capture_cols.items():
            chunks.setdefault(key, []).append(values)
        del capture_cols
    columns = {k: _join(v) for k, v in chunks.items()}
    del chunks
    if columns and len(columns["uid"]):  # the frame pd.DataFrame(rows, columns=...) makes of the row dicts
        df = pd.DataFrame(columns, columns=[c for c in FLOW_COLUMNS if c in columns])
    else:
        df = pd.DataFrame([])
    del columns
    # each stage's temporaries go back to the system after it: freed, they stay resident in glibc's heap (~70 MB
    # after building the frame on 300k flows), and later stages, allocating other sizes, reuse only part of them
    give_back()
    df = _geo(df, geo)
    give_back()
    df = location.check(df, geo, vantage)
    give_back()
    df = apply_verdicts(df, policy)
    df = df.reindex(columns=FLOW_COLUMNS)
    df = df.astype({c: "Int64" for c in INT_COLUMNS})
    give_back()
    if len(df):
        df = _sorted(df)
        give_back()
    summary = summarize(df)
    summary["campaign"] = campaign.summarize(df, [c.path for c in captures], policy is not None)
    give_back()
    summary.update(_geo_summary(df, geo))
    seen_from = vantage or (location.client_vantage(df, geo) if len(df) else None)  # the report's map
    summary["vantage"] = None if seen_from is None else dataclasses.asdict(seen_from)
    usage = geo.usage()
    return Audit(captures, [{**db.as_dict(), "answered": usage.get(db.path, 0)} for db in geo.databases],
                 policy, df, summary)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    """Worst verdict first, key exchanges first, then most bytes, then capture and frame: a stable sort
    (what sort_values over these keys gives). From TAKE_ROWS rows on, empties `df`: see `_taken`."""
    keys = (df["first_frame"].to_numpy(np.float64, na_value=np.inf), pd.factorize(df["capture"], sort=True)[0],
            (-(df["orig_bytes"] + df["resp_bytes"])).to_numpy(np.float64, na_value=np.inf),
            df["key_exchange"].isna().to_numpy(), df["verdict"].map(VERDICT_ORDER).fillna(2).to_numpy(np.float64))
    order = np.lexsort(keys)
    if len(df) < TAKE_ROWS:
        return df.take(order).reset_index(drop=True)
    return _taken(df, order)



def _taken(df: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """`df.take(order).reset_index(drop=True)`, moving the columns over one at a time: each leaves `df` as
    its reordered copy is made, so one column, not the whole table, exists twice (`df.take` held both
    tables: ~60 MB more at the peak on 300k flows). `df` is left without columns."""
    index, columns = pd.RangeIndex(len(order)), df.columns
    out = pd.DataFrame(index=index)
    for name in columns:
        out[name] = pd.Series(df.pop(name).array.take(order), index=index, copy=False)
    out.columns = columns  # the same labels object (and dtype) as df.take keeps
    return out


def _geo(df: pd.DataFrame, geo: GeoLookup) -> pd.DataFrame:
    """Look up each server address once and join the answers; then attribute vendors."""
    cols = ["resp_scope", "resp_cc", "resp_registered_cc", "resp_represented_cc", "resp_represented_type",
            "resp_asn", "resp_org", "resp_lat", "resp_lon", "resp_accuracy_km", "is_anycast", "geo_agree",
            "geo_sources", "geo_db", "geo_db_date", "_anycast_source", "_geo_disagreement"]
    if df.empty:
        return df.reindex(columns=list(df.columns) + cols + ["vendor", "vendor_evidence"])
    info = {}
    made: dict[int, tuple] = {}  # addresses the databases answer alike share one GeoInfo: one row for it
    for addr in df["resp_h"].unique():
        g = geo.lookup(addr)
        known = made.get(id(g))
        if known is None:  # (g, row): holding g keeps its id unique
            known = made[id(g)] = (g, (
                g.scope, g.cc, g.registered_cc, g.represented_cc, g.represented_type, g.asn, g.org, g.lat, g.lon,
                g.accuracy_km, g.is_anycast, g.agree, dict(g.sources) if g.scope == "public" else None, g.db,
                g.db_date, g.anycast_source, g.disagreement()))
        info[addr] = known[1]
    geo_df = pd.DataFrame.from_dict(info, orient="index", columns=cols)
    # df.join(geo_df, on="resp_h") by position: every address is in geo_df's index
    right = geo_df.take(geo_df.index.get_indexer(df["resp_h"]))
    right.index = df.index
    df = pd.concat([df, right], axis=1)
    df["resp_asn"] = df["resp_asn"].astype("Int64")
    keys = ["capture", "server_name", "server_name_source", "resp_asn", "proto", "resp_p", "details"]
    vend = attribute_columns(*(df[k].tolist() for k in keys))
    df["vendor"] = [v for v, _ in vend]
    df["vendor_evidence"] = [e for _, e in vend]
    return df


def _geo_summary(df: pd.DataFrame, geo: GeoLookup) -> dict:
    """Location checks, suspects, anycast and disagreeing servers, and warnings about stale databases."""
    servers = df[["resp_h", "location_check", "is_anycast", "geo_agree"]].drop_duplicates("resp_h") if len(df) else df
    checks = servers["location_check"].value_counts().items() if len(df) else []
    return {
        "suspects": int((df["verdict"] == "suspect").sum()) if len(df) else 0,
        "location_checks": {k: int(v) for k, v in checks},
        "anycast_servers": int(servers["is_anycast"].eq(True).sum()) if len(df) else 0,
        "disagreeing_servers": int(servers["geo_agree"].eq(False).sum()) if len(df) else 0,
        "warnings": geo.warnings + geo.freshness_warnings(used_only=True),
    }


def summarize(df: pd.DataFrame) -> dict:
    """The one-line summary: flows, servers, countries, violations, key-exchange violations."""
    if df.empty:
        return {"flows": 0, "servers": 0, "countries": [], "violations": 0, "key_exchange_violations": 0,
                "key_exchange_flows": 0, "verdicts": {}}
    df = df[["resp_scope", "resp_h", "resp_cc", "verdict", "key_exchange"]]  # filters copy only these
    public = df[df["resp_scope"] == "public"]
    violations = df[df["verdict"] == "violation"]
    return {
        "flows": len(df),
        "servers": int(public["resp_h"].nunique()),
        "countries": sorted(public["resp_cc"].dropna().unique().tolist()),
        "violations": len(violations),
        "key_exchange_flows": int(df["key_exchange"].notna().sum()),
        "key_exchange_violations": int(violations["key_exchange"].notna().sum()),
        "violating_countries": sorted(violations["resp_cc"].dropna().unique().tolist()),
        "verdicts": {k: int(v) for k, v in df["verdict"].value_counts().items()},
    }
