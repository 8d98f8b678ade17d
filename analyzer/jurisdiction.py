"""The jurisdiction policy (expected countries, a stricter set for key exchange, a deny list) and verdicts.

Country groups (EU, EEA, FIVE_EYES, ...) are data in data/country_groups.toml, so a change in membership
is a data edit, not a code change.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pycountry

from analyzer.capture import path_text
from analyzer.errors import CallauditError

GROUPS_FILE = Path(__file__).resolve().parent / "data" / "country_groups.toml"
POLICY_KEYS = ("expected", "key_exchange", "deny", "require_registered", "anycast")
VERDICTS = ("unchecked", "local", "unknown", "violation", "suspect", "anycast", "ok")
ANYCAST_RULES = ("report", "judge")


@dataclass(frozen=True)
class Policy:
    """Where servers may be. An empty `expected` set means any country that is not denied."""

    expected: frozenset[str]
    key_exchange: frozenset[str] | None
    deny: frozenset[str]
    source: str
    # also require the country where the network is registered (RIR data) to be expected
    require_registered: bool = False
    # "report": anycast addresses get verdict `anycast` (their database country is meaningless);
    # "judge": judge them by the database country like any other address
    anycast: str = "report"

    def as_dict(self) -> dict:
        return {
            "expected": sorted(self.expected),
            "key_exchange": None if self.key_exchange is None else sorted(self.key_exchange),
            "deny": sorted(self.deny),
            "require_registered": self.require_registered,
            "anycast": self.anycast,
            "source": self.source,
        }


@cache
def _group_data() -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    data = tomllib.loads(GROUPS_FILE.read_text(encoding="utf-8"))
    groups = {name.upper(): [str(m).upper() for m in members] for name, members in data["groups"].items()}
    aliases = {k.upper(): str(v).upper() for k, v in data.get("aliases", {}).items()}
    extra = {k.upper(): str(v) for k, v in data.get("extra_codes", {}).items()}
    return groups, aliases, extra


def country_groups() -> dict[str, frozenset[str]]:
    """Every group name with its expanded members, for help texts and reports."""
    groups, _, _ = _group_data()
    return {name: parse_countries([name]) for name in groups}


def country_name(cc: str) -> str | None:
    """Short English name for reasons ("South Korea", not "Korea, Republic of")."""
    code = cc.upper()
    record = pycountry.countries.get(alpha_2=code)
    if record is not None:
        return getattr(record, "common_name", None) or record.name
    return _group_data()[2].get(code)


def _expand(token: str, seen: tuple[str, ...] = ()) -> set[str]:
    groups, aliases, extra = _group_data()
    code = token.strip().upper()
    if code in groups:
        if code in seen:
            raise CallauditError(f"country group {code} includes itself")
        members: set[str] = set()
        for member in groups[code]:
            members |= _expand(member, (*seen, code))
        return members
    code = aliases.get(code, code)
    if len(code) == 2 and (pycountry.countries.get(alpha_2=code) is not None or code in extra):
        return {code}
    names = ", ".join(sorted(groups))
    raise CallauditError(f"unknown country code or group {token.strip()!r} (use ISO alpha-2 codes or {names})")


def parse_countries(spec: str | Iterable[str]) -> frozenset[str]:
    """"US,ca, EU" → {"US", "CA", "AT", ...}: codes upper-cased and validated, groups expanded."""
    tokens = re.split(r"[,\s]+", spec) if isinstance(spec, str) else list(spec)
    codes: set[str] = set()
    for token in tokens:
        if not isinstance(token, str):
            raise CallauditError(f"country codes must be strings, got {token!r}")
        if token.strip():
            codes |= _expand(token)
    return frozenset(codes)


def policy_from_expect(spec: str) -> Policy:
    """The --expect option: only an expected set, which also covers key exchange."""
    expected = parse_countries(spec)
    if not expected:
        raise CallauditError("--expect needs at least one country code or group")
    return Policy(expected=expected, key_exchange=None, deny=frozenset(), source=f"--expect {spec}")


def _countries_field(data: dict[str, Any], key: str, path: Path) -> frozenset[str] | None:
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, str | list) or not all(isinstance(v, str) for v in value):
        raise CallauditError(f"policy {path}: {key} must be a list of country codes, like [\"US\", \"CA\"]")
    try:
        return parse_countries(value)
    except CallauditError as err:
        raise CallauditError(f"policy {path}: {key}: {err}") from err


def load_policy(path: str | Path) -> Policy:
    """A TOML policy file: expected = [...], key_exchange = [...], deny = [...] (groups allowed)."""
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CallauditError(f"policy file not found: {path}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise CallauditError(f"cannot read policy file {path}: {err.__class__.__name__}") from err
    except tomllib.TOMLDecodeError as err:
        raise CallauditError(f"policy {path} is not valid TOML: {' '.join(str(err).split())}") from err
    unknown = sorted(set(data) - set(POLICY_KEYS))
    if unknown:
        allowed = ", ".join(POLICY_KEYS)
        raise CallauditError(f"policy {path}: unknown key(s) {', '.join(unknown)} (allowed: {allowed})")
    expected = _countries_field(data, "expected", path)
    key_exchange = _countries_field(data, "key_exchange", path)
    deny = _countries_field(data, "deny", path) or frozenset()
    if not expected and not key_exchange and not deny:
        raise CallauditError(f"policy {path}: needs at least one of expected, key_exchange, deny")
    overlap = (expected or frozenset()) & deny
    if overlap:
        raise CallauditError(f"policy {path}: {','.join(sorted(overlap))} both expected and denied")
    require_registered = data.get("require_registered", False)
    if not isinstance(require_registered, bool):
        raise CallauditError(f"policy {path}: require_registered must be true or false")
    anycast = data.get("anycast", "report")
    if anycast not in ANYCAST_RULES:
        raise CallauditError(f"policy {path}: anycast must be one of {', '.join(map(repr, ANYCAST_RULES))}")
    return Policy(
        expected=expected or frozenset(), key_exchange=key_exchange, deny=deny, source=path_text(path),
        require_registered=require_registered, anycast=anycast,
    )


def _label(cc: str) -> str:
    name = country_name(cc)
    return f"{cc} ({name})" if name else cc


def _present(value: Any) -> bool:
    """Null-like values from DataFrames (None, NaN, pd.NA, "") count as absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def _judge_country(policy: Policy, cc: str, key_exchange: Any, what: str) -> tuple[str, str | None]:
    """The located (or registered) country against deny list, key-exchange set and expected set."""
    if cc in policy.deny:
        return "violation", f"{what}{_label(cc)} is on the deny list"
    if _present(key_exchange) and policy.key_exchange is not None and cc not in policy.key_exchange:
        allowed = ",".join(sorted(policy.key_exchange))
        return "violation", (
            f"key exchange ({key_exchange}) reached {what}{_label(cc)}, outside the key-exchange set {allowed}"
        )
    if policy.expected and cc not in policy.expected:
        return "violation", f"{what}{_label(cc)} is outside the expected set {','.join(sorted(policy.expected))}"
    return "ok", None


def _join(*parts: str | None) -> str | None:
    text = "; ".join(p for p in parts if p)
    return text or None


def judge(policy: Policy | None, scope: str, cc: str | None, key_exchange: str | None,
          registered_cc: str | None = None, anycast: str | bool | None = None,
          disagreement: str | None = None, location: str | None = None,
          location_reason: str | None = None) -> tuple[str, str | None]:
    """One flow's verdict and reason. Deny beats everything; key exchange flows must also meet the
    stricter key-exchange set when there is one. Anycast addresses are `anycast` unless the policy says
    judge them; a location physics rules out is `suspect`, never `ok` and never silently a violation."""
    if policy is None:
        return "unchecked", None
    if scope == "local":
        return "local", None
    noted = f"databases disagree: {disagreement}" if _present(disagreement) else None
    if _present(anycast) and anycast is not False and policy.anycast == "report":
        how = f" ({anycast})" if isinstance(anycast, str) else ""
        where = f"; database country {_label(str(cc).upper())}" if _present(cc) else ""
        return "anycast", _join(
            f"anycast address{how}: announced from many places, the answering server's country is unknown"
            f"{where}", noted)
    if not _present(cc):
        verdict, reason = "unknown", "no GeoIP database knows this address"
    else:
        verdict, reason = _judge_country(policy, str(cc).upper(), key_exchange, "")
    if policy.require_registered and verdict != "violation":
        if not _present(registered_cc):
            verdict, reason = "unknown", _join(reason, "the policy requires a registered country and no "
                                                       "database gives one (add a GeoLite2/GeoIP2 Country DB)")
        else:
            registered = _judge_country(policy, str(registered_cc).upper(), key_exchange, "registered country ")
            if registered[0] == "violation":
                verdict, reason = registered
    if location == "impossible":
        return "suspect", _join(location_reason, f"by the database alone: {verdict}"
                                + (f" ({reason})" if reason else ""), noted)
    return verdict, _join(reason, noted)


# judge() arguments after (policy, scope, cc, key_exchange), and the flow columns that carry them
_OPTIONAL = (("registered_cc", "resp_registered_cc"), ("anycast", "_anycast_source"),
             ("disagreement", "_geo_disagreement"), ("location", "location_check"),
             ("location_reason", "location_reason"))


def apply_verdicts(flows: pd.DataFrame, policy: Policy | None) -> pd.DataFrame:
    """A copy of `flows` with `verdict` and `reason`; each distinct combination of the judged columns
    (scope, cc, key exchange, and where present registered cc, anycast, disagreement, location check)
    is judged once."""
    out = flows.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    missing = [c for c in ("resp_scope", "resp_cc") if c not in flows.columns]
    if missing:
        raise ValueError(f"apply_verdicts needs column(s) {', '.join(missing)}")
    columns = {"resp_scope": flows["resp_scope"], "resp_cc": flows["resp_cc"],
               "key_exchange": flows["key_exchange"] if "key_exchange" in flows.columns else None}
    for _, column in _OPTIONAL:
        columns[column] = flows[column] if column in flows.columns else None
    keys = pd.DataFrame(columns, index=flows.index)
    if keys.empty:
        out["verdict"] = pd.Series(dtype=object)
        out["reason"] = pd.Series(dtype=object)
        return out
    # rows with equal values in every judged column (missing values all alike) form one group, numbered
    # in order of appearance; each group is judged on its first row
    group = np.zeros(len(keys), dtype=np.int64)
    for column in keys.columns:
        codes, uniques = pd.factorize(keys[column])  # missing: -1
        group = pd.factorize(group * (len(uniques) + 1) + codes + 1)[0]
    _, first = np.unique(group, return_index=True)
    firsts = keys.iloc[first].astype(object)
    firsts = firsts.where(firsts.notna(), None)
    names = [n for n, _ in _OPTIONAL]
    judged = [judge(policy, scope, cc, kx, **dict(zip(names, rest)))
              for scope, cc, kx, *rest in firsts.itertuples(index=False, name=None)]
    out["verdict"] = np.array([verdict for verdict, _ in judged], dtype=object)[group]
    out["reason"] = np.array([reason for _, reason in judged], dtype=object)[group]
    return out
