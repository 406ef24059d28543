from __future__ import annotations

import textwrap
import tomllib
from typing import Any

import pytest

from shadowdiff.diff import rules as rules_module
from shadowdiff.diff.rules import DEFAULT_MAX_DECODED_BYTES, Rules
from shadowdiff.errors import ConfigError


def documented_example() -> str:
    """The TOML example in the rules module docstring (so the docs cannot go stale)."""
    doc = rules_module.__doc__ or ""
    block = doc.split("::\n", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def test_the_documented_example_parses() -> None:
    rules = Rules.from_mapping(tomllib.loads(documented_example()))
    assert rules.ignore_headers == ("x-cache", "x-b3-*")
    assert [str(p) for p in rules.ignore_body] == [
        "$.served_at",
        "$..trace_id",
        "$.items[*].took_ms",
    ]
    assert rules.default_headers is True
    assert [(str(n.pattern), n.regex.pattern, n.replace) for n in rules.normalize] == [
        ("$..url", r"\?.*$", "")
    ]
    assert [(str(t.pattern), t.absolute, t.relative) for t in rules.tolerance] == [
        ("$.total", 0.01, 0.0),
        ("$..score", 0.0, 0.001),
    ]
    assert [str(p) for p in rules.order_ignore] == ["$.tags", "$.items[*].labels"]
    assert "authorization" in rules.redact_headers and "x-session" in rules.redact_headers
    assert [str(p) for p in rules.redact_body] == ["$.user.email", "$..token"]
    assert rules.max_decoded_bytes == 16777216
    assert rules.max_diffs_per_pair == 1000
    assert rules.float_relative == 1e-9


def test_defaults() -> None:
    rules = Rules.from_mapping({})
    assert rules == Rules()
    assert rules.redact_headers == (
        "authorization",
        "cookie",
        "set-cookie",
        "proxy-authorization",
        "x-api-key",
    )
    assert rules.max_decoded_bytes == DEFAULT_MAX_DECODED_BYTES


def test_pipeline_sections_are_left_to_their_owners() -> None:
    rules = Rules.from_mapping(
        {"inputs": {"primary": ["a.log"]}, "pairing": {"key": "x"}, "ignore": {"body": "$.a"}}
    )
    assert [str(p) for p in rules.ignore_body] == ["$.a"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ignroe": {}}, "unknown section [ignroe]. Did you mean 'ignore'?"),
        ({"tolerence": {}}, "unknown section [tolerence]. Did you mean 'tolerance'?"),
        ({"ignore": {"bodies": []}}, "unknown setting 'bodies' in [ignore]. Did you mean 'body'?"),
        (
            {"order": {"ignored": []}},
            "unknown setting 'ignored' in [order]. Did you mean 'ignore'?",
        ),
        (
            {"normalize": [{"pattern": "$.a", "regexp": "x"}]},
            "unknown setting 'regexp' in [[normalize]] #1. Did you mean 'regex'?",
        ),
        (
            {"tolerance": {"$.a": {"absolut": 1}}},
            "unknown setting 'absolut' in [tolerance] '$.a'. Did you mean 'absolute'?",
        ),
        (
            {"limits": {"max_decoded": 10}},
            "unknown setting 'max_decoded' in [limits]. Did you mean 'max_decoded_bytes'?",
        ),
        (
            {"ignore": {"body": ["served_at"]}},
            "[ignore] body: path 'served_at' must start with '$'",
        ),
        ({"ignore": {"body": [1]}}, "[ignore] body must be a string or a list of strings"),
        ({"ignore": {"default_headers": "no"}}, "default_headers must be true or false"),
        ({"normalize": [{"pattern": "$.a", "regex": "("}]}, "[[normalize]] #1 regex '('"),
        ({"normalize": [{"pattern": "$.a"}]}, 'needs regex = "…"'),
        ({"normalize": [{"pattern": "$.a", "regex": "x", "replace": r"\9"}]}, "replace"),
        ({"tolerance": {"$.a": 0.1}}, "[tolerance] '$.a' must be a table"),
        ({"tolerance": {"$.a": {"absolute": -1}}}, "absolute must be a number >= 0"),
        ({"tolerance": {"$.a": {}}}, "needs absolute or relative"),
        ({"tolerance": {"a": {"absolute": 1}}}, "must start with '$'"),
        ({"tolerance": {"float_relative": -1e-9}}, "float_relative must be a number >= 0"),
        ({"tolerance": {"float_relative": {"relative": 1}}}, "float_relative must be a number"),
        ({"tolerance": {"float_relative": True}}, "float_relative must be a number"),
        ({"limits": {"max_decoded_bytes": 0}}, "max_decoded_bytes must be a whole number > 0"),
        ({"redact": []}, "[redact] must be a table of settings"),
    ],
)
def test_mistakes_are_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Rules.from_mapping(data, origin="rules.toml")
    assert str(caught.value).startswith("rules.toml: ")
    assert message in str(caught.value)


def test_lookups() -> None:
    rules = Rules.from_mapping(
        {
            "ignore": {"headers": ["X-Cache", "x-b3-*"], "body": ["$..trace_id"]},
            "tolerance": {"$.price": {"absolute": 0.01}, "$..score": {"relative": 0.1}},
            "normalize": [{"pattern": "$..url", "regex": r"\?.*$"}],
            "order": {"ignore": ["$.tags"]},
            "redact": {"headers": ["x-session*"]},
        }
    )
    assert rules.ignored_header("x-cache") == "rule: ignore header x-cache"
    assert rules.ignored_header("x-b3-spanid") == "rule: ignore header x-b3-*"
    assert rules.ignored_header("x-other") is None
    assert rules.ignored_body(("spans", 2, "trace_id")) == "rule: ignore $..trace_id"
    assert rules.ignored_body(("spans", 2)) is None
    assert rules.tolerated(("price",), 1.0, 1.005) == "rule: tolerance $.price"
    assert rules.tolerated(("price",), 1.0, 1.02) is None
    assert rules.tolerated(("a", "score"), 100, 109) == "rule: tolerance $..score"
    assert rules.tolerated(("a", "score"), 100, 112) is None
    assert rules.normalized(("x", "url"), "/a?b=1", "/a?b=2") == "rule: normalize $..url"
    assert rules.normalized(("x", "url"), "/a?b=1", "/c?b=2") is None
    assert rules.normalized(("x", "uri"), "/a?b=1", "/a?b=2") is None
    assert rules.order_free(("tags",)) == "rule: order $.tags"
    assert rules.order_free(("tags", 0)) is None  # order rules name arrays exactly
    assert rules.redacts_header("x-session-id") and rules.redacts_header("cookie")


def test_floats_within_a_billionth_are_the_same_number_by_default() -> None:
    rules = Rules()
    assert rules.float_relative == 1e-9
    assert rules.same_float(19.990000000012, 19.99)  # 6e-13 apart, relatively
    assert rules.same_float(0.1 + 0.2, 0.3)
    assert not rules.same_float(19.99, 19.991)  # 5e-5: a change
    assert not rules.same_float(10**18, 10**18 + 1)  # integers are exact
    assert rules.same_float(10**18, float(10**18 + 1))  # but a float is a measurement
    assert not rules.same_float(0.0, 1e-300)  # zero against anything else is a change


def test_the_float_tolerance_is_set_in_the_tolerance_section() -> None:
    wider = Rules.from_mapping({"tolerance": {"float_relative": 1e-6, "$.a": {"absolute": 1}}})
    assert wider.float_relative == 1e-6 and wider.same_float(1.0, 1.0000005)
    assert [str(t.pattern) for t in wider.tolerance] == ["$.a"]  # a setting, not a pattern
    exact = Rules.from_mapping({"tolerance": {"float_relative": 0}})
    assert not exact.same_float(19.990000000012, 19.99)
