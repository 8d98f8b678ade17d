"""Tests for analyzer/jurisdiction.py: country parsing and groups, policy files, verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzer.errors import CallauditError
from analyzer.jurisdiction import (
    Policy,
    apply_verdicts,
    country_groups,
    country_name,
    judge,
    load_policy,
    parse_countries,
    policy_from_expect,
)

EU = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
      "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}


def policy(expected: str = "US,CA", key_exchange: str | None = None, deny: str = "") -> Policy:
    return Policy(
        expected=parse_countries(expected),
        key_exchange=None if key_exchange is None else parse_countries(key_exchange),
        deny=parse_countries(deny),
        source="test",
    )


# --- countries and groups ----------------------------------------------------------------------


def test_parse_countries_normalises_case_and_spacing() -> None:
    assert parse_countries("US,ca, mx") == frozenset({"US", "CA", "MX"})
    assert parse_countries(["us", " CA "]) == frozenset({"US", "CA"})
    assert parse_countries("") == frozenset()


def test_groups() -> None:
    assert parse_countries("EU") == EU
    assert len(EU) == 27
    assert parse_countries("eea") == EU | {"IS", "LI", "NO"}
    assert parse_countries("Five_Eyes") == {"US", "GB", "CA", "AU", "NZ"}
    assert parse_countries("NINE_EYES") == {"US", "GB", "CA", "AU", "NZ", "DK", "FR", "NL", "NO"}
    assert len(parse_countries("FOURTEEN_EYES")) == 14
    assert parse_countries("north_america") == {"US", "CA", "MX"}
    assert parse_countries("US, EU") == EU | {"US"}
    assert set(country_groups()) >= {"EU", "EEA", "FIVE_EYES", "NINE_EYES", "FOURTEEN_EYES"}


def test_aliases_and_user_assigned_codes() -> None:
    assert parse_countries("UK,EL,XK") == {"GB", "GR", "XK"}
    assert country_name("XK") == "Kosovo"
    assert country_name("cn") == "China"
    assert country_name("KR") == "South Korea"
    assert country_name("ZZ") is None


@pytest.mark.parametrize("bad", ["US,QQ", "USA", "Q", "EUROPE", "US,1"])
def test_unknown_code_names_it(bad: str) -> None:
    token = bad.split(",")[-1]
    with pytest.raises(CallauditError, match=f"unknown country code or group '{token}'"):
        parse_countries(bad)


def test_non_string_member() -> None:
    with pytest.raises(CallauditError, match="must be strings"):
        parse_countries(["US", 3])  # type: ignore[list-item]


def test_policy_from_expect() -> None:
    p = policy_from_expect("US,ca")
    assert p == Policy(frozenset({"US", "CA"}), None, frozenset(), "--expect US,ca")
    assert p.as_dict() == {"expected": ["CA", "US"], "key_exchange": None, "deny": [], "require_registered": False,
                           "anycast": "report", "source": "--expect US,ca"}
    with pytest.raises(CallauditError, match="at least one"):
        policy_from_expect(" , ")


# --- policy files ------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_load_policy(tmp_path: Path) -> None:
    path = write(tmp_path, 'expected = ["US", "ca"]\nkey_exchange = ["US"]\ndeny = ["CN", "RU"]\n')
    p = load_policy(path)
    assert p == Policy(frozenset({"US", "CA"}), frozenset({"US"}), frozenset({"CN", "RU"}), str(path))
    assert p.as_dict()["key_exchange"] == ["US"]


def test_load_policy_with_groups_and_defaults(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, 'expected = ["EEA", "uk"]\n'))
    assert p.expected == EU | {"IS", "LI", "NO", "GB"}
    assert p.key_exchange is None and p.deny == frozenset()


def test_policy_accepts_a_comma_string(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, 'expected = "US, CA"\n')).expected == {"US", "CA"}


def test_deny_only_policy(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, 'deny = ["CN"]\n'))
    assert p.expected == frozenset()
    assert judge(p, "public", "DE", None) == ("ok", None)
    assert judge(p, "public", "CN", None)[0] == "violation"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('expected = ["US"]\nallow = ["CA"]\n', "unknown key.*allow"),
        ('expected = ["US"]\nkey_exchange = 3\n', "key_exchange must be a list"),
        ('expected = ["US", 1]\n', "expected must be a list"),
        ('expected = ["US", "XX"]\n', "expected: unknown country code or group 'XX'"),
        ('expected = ["US"\n', "not valid TOML"),
        ("", "needs at least one"),
        ('expected = ["US", "CN"]\ndeny = ["CN"]\n', "CN both expected and denied"),
    ],
)
def test_bad_policy_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CallauditError, match=message) as err:
        load_policy(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(CallauditError, match="policy file not found: .*missing.toml"):
        load_policy(tmp_path / "missing.toml")


# --- verdicts ----------------------------------------------------------------------------------


def test_judge_without_policy_or_local_or_unknown() -> None:
    assert judge(None, "public", "CN", "tls") == ("unchecked", None)
    assert judge(policy(), "local", None, None) == ("local", None)
    verdict, reason = judge(policy(), "public", None, "tls")
    assert verdict == "unknown" and reason


def test_judge_expected_set() -> None:
    assert judge(policy(), "public", "US", None) == ("ok", None)
    assert judge(policy(), "public", "us", "tls") == ("ok", None)
    assert judge(policy(), "public", "CN", None) == (
        "violation", "CN (China) is outside the expected set CA,US",
    )


def test_judge_key_exchange_set() -> None:
    p = policy(key_exchange="CA,US")
    assert judge(p, "public", "CA", "tls") == ("ok", None)
    p = policy(expected="US,CA,DE", key_exchange="US,CA")
    assert judge(p, "public", "DE", None) == ("ok", None)
    assert judge(p, "public", "DE", "") == ("ok", None)
    assert judge(p, "public", "DE", "dtls-srtp") == (
        "violation", "key exchange (dtls-srtp) reached DE (Germany), outside the key-exchange set CA,US",
    )
    assert judge(policy(key_exchange="CA,US"), "public", "CN", "tls") == (
        "violation", "key exchange (tls) reached CN (China), outside the key-exchange set CA,US",
    )


def test_deny_beats_everything() -> None:
    p = policy(expected="US,CN", key_exchange="CN", deny="CN")
    assert judge(p, "public", "CN", "tls") == ("violation", "CN (China) is on the deny list")
    assert judge(p, "public", "CN", None) == ("violation", "CN (China) is on the deny list")


def flows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": ["C1", "C2", "C3", "C4", "C5", "C6", "C7"],
            "resp_scope": ["public", "local", "public", "public", "public", "public", "public"],
            "resp_cc": ["US", None, np.nan, "CN", "DE", "DE", "US"],
            "key_exchange": [None, "tls", None, None, "tls", None, "quic"],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )


def test_apply_verdicts() -> None:
    table = flows()
    p = policy(expected="US,CA,DE", key_exchange="US,CA", deny="CN")
    out = apply_verdicts(table, p)
    assert "verdict" not in table.columns  # a copy, input untouched
    assert list(out.index) == list(table.index)
    assert list(out["verdict"]) == ["ok", "local", "unknown", "violation", "violation", "ok", "ok"]
    assert out.loc[13, "reason"] == "CN (China) is on the deny list"
    assert out.loc[14, "reason"].startswith("key exchange (tls) reached DE (Germany)")
    assert out["uid"].tolist() == table["uid"].tolist()


def test_apply_verdicts_matches_judge_row_by_row() -> None:
    table = flows()
    p = policy(expected="US", key_exchange="US", deny="CN")
    out = apply_verdicts(table, p)
    for row, verdict, reason in zip(table.itertuples(), out["verdict"], out["reason"], strict=True):
        expected = judge(p, row.resp_scope, row.resp_cc, row.key_exchange)
        assert expected[0] == verdict
        assert expected[1] == (None if pd.isna(reason) else reason)


def test_apply_verdicts_groups_rows_like_judging_each() -> None:
    """Equal judged values (missing ones all alike: None, NaN, pd.NA) share one judgement."""
    n = 12
    table = pd.DataFrame({
        "resp_scope": ["public"] * (n - 1) + ["local"],
        "resp_cc": pd.Series(["US", "CN", None, np.nan, "DE", "US", "US", "DE", "CN", "US", pd.NA, "US"], dtype=object),
        "key_exchange": ["tls", None, None, "tls", "quic", None, "tls", "tls", None, None, "tls", None],
        "resp_registered_cc": ["US", None, "FR", None, "DE", "CN", "US", "DE", None, np.nan, None, None],
        "_anycast_source": [None] * 5 + ["anycast.toml AS13335"] + [None] * 6,
        "_geo_disagreement": [None] * 6 + ["DB-IP says US, X says CA"] + [None] * 5,
        "location_check": ["unknown"] * 7 + ["impossible"] + [None] * 4,
        "location_reason": ["r"] * 7 + ["too far"] + [None] * 4,
    }, index=range(100, 100 + n))
    p = Policy(expected=frozenset({"US", "DE"}), key_exchange=frozenset({"US"}), deny=frozenset({"CN"}),
               source="t", require_registered=True)
    out = apply_verdicts(table, p)
    for (_, r), verdict, reason in zip(table.iterrows(), out["verdict"], out["reason"], strict=True):
        def v(x):
            return None if pd.isna(x) else x
        assert (verdict, v(reason)) == judge(p, r.resp_scope, v(r.resp_cc), v(r.key_exchange), v(r.resp_registered_cc),
                                             v(r._anycast_source), v(r._geo_disagreement), v(r.location_check),
                                             v(r.location_reason))


def test_apply_verdicts_without_policy_or_rows_or_key_exchange_column() -> None:
    assert set(apply_verdicts(flows(), None)["verdict"]) == {"unchecked"}
    empty = apply_verdicts(flows().iloc[0:0], policy())
    assert list(empty.columns)[-2:] == ["verdict", "reason"] and empty.empty
    out = apply_verdicts(flows().drop(columns="key_exchange"), policy(key_exchange="US"))
    assert out.loc[14, "verdict"] == "violation"  # DE is outside the expected set CA,US


# --- registered country, anycast, disagreement, physics ------------------------------------------


def test_policy_file_require_registered_and_anycast(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, 'expected = ["US"]\nrequire_registered = true\nanycast = "judge"\n'))
    assert (p.require_registered, p.anycast) == (True, "judge")
    assert (load_policy(write(tmp_path, 'deny = ["CN"]\n')).anycast) == "report"
    for text, message in (('expected = ["US"]\nrequire_registered = "yes"\n', "require_registered must be"),
                          ('expected = ["US"]\nanycast = "ignore"\n', "anycast must be one of")):
        with pytest.raises(CallauditError, match=message):
            load_policy(write(tmp_path, text))


def test_require_registered() -> None:
    p = Policy(frozenset({"US", "CA"}), frozenset({"US"}), frozenset({"CN"}), "t", require_registered=True)
    assert judge(p, "public", "US", None, registered_cc="US") == ("ok", None)
    assert judge(p, "public", "US", None, registered_cc="GB") == (
        "violation", "registered country GB (United Kingdom) is outside the expected set CA,US")
    assert judge(p, "public", "US", "tls", registered_cc="CA") == (
        "violation", "key exchange (tls) reached registered country CA (Canada), outside the key-exchange set US")
    verdict, reason = judge(p, "public", "US", None)
    assert verdict == "unknown" and "no database gives one" in reason
    assert judge(p, "public", "CN", None, registered_cc="US")[1] == "CN (China) is on the deny list"
    relaxed = Policy(frozenset({"US"}), None, frozenset(), "t")
    assert judge(relaxed, "public", "US", None, registered_cc="GB") == ("ok", None)


def test_anycast_is_reported_unless_the_policy_judges_it() -> None:
    p = policy()
    verdict, reason = judge(p, "public", "CN", "tls", anycast="anycast.toml AS13335")
    assert verdict == "anycast"
    assert reason == ("anycast address (anycast.toml AS13335): announced from many places, the answering "
                      "server's country is unknown; database country CN (China)")
    judged = Policy(p.expected, p.key_exchange, p.deny, "t", anycast="judge")
    assert judge(judged, "public", "CN", "tls", anycast="anycast.toml AS13335")[0] == "violation"
    assert judge(p, "public", "CN", None, anycast=None)[0] == "violation"


def test_disagreement_is_in_the_reason() -> None:
    assert judge(policy(), "public", "US", None, disagreement="DB-IP says CN, GeoLite2-Country says US") == (
        "ok", "databases disagree: DB-IP says CN, GeoLite2-Country says US")
    verdict, reason = judge(policy(), "public", "CN", None, disagreement="DB-IP says CN, GeoLite2-Country says HK")
    assert verdict == "violation"
    assert reason.endswith("; databases disagree: DB-IP says CN, GeoLite2-Country says HK")


def test_impossible_location_is_suspect_never_ok() -> None:
    why = "database says CN, but a 4 ms RTT from a US vantage bounds the server within 600 km"
    assert judge(policy(), "public", "US", None, location="impossible", location_reason=why) == (
        "suspect", f"{why}; by the database alone: ok")
    verdict, reason = judge(policy(), "public", "CN", None, location="impossible", location_reason=why)
    assert verdict == "suspect" and "by the database alone: violation (CN (China) is outside" in reason
    assert judge(policy(), "public", "US", None, location="implausible", location_reason=why) == ("ok", None)
    assert judge(None, "public", "US", None, location="impossible") == ("unchecked", None)


def test_apply_verdicts_uses_the_optional_columns() -> None:
    df = pd.DataFrame({
        "resp_scope": ["public", "public", "public", "local"],
        "resp_cc": ["US", "US", "US", None],
        "key_exchange": [None, None, None, None],
        "resp_registered_cc": ["US", "US", "US", None],
        "_anycast_source": [None, "anycast.toml prefix 1.1.1.0/24", None, None],
        "location_check": ["consistent", "consistent", "impossible", None],
        "location_reason": ["fine", "fine", "too far", None],
    })
    out = apply_verdicts(df, policy())
    assert out["verdict"].tolist() == ["ok", "anycast", "suspect", "local"]
