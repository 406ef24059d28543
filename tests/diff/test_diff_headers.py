from __future__ import annotations

import pytest

from shadowdiff.diff import headers
from shadowdiff.diff.engine import diff_pair
from shadowdiff.diff.model import Message
from shadowdiff.diff.rules import Rules

Headers = tuple[tuple[str, str], ...]


def rows(a: Headers, b: Headers, rules: Rules | None = None, settled: bool = False) -> list[tuple]:
    return [
        (path, kind, pv, mv, reason)
        for _, path, _, kind, pv, mv, _, reason in headers.diff(a, b, rules or Rules(), settled)
    ]


def test_names_are_compared_case_insensitively_and_written_lowercase() -> None:
    assert rows((("X-Api-Version", "1"),), (("x-api-version", "1"),)) == []
    assert rows((("X-Api-Version", "1"),), (("x-API-version", "2"),)) == [
        ("x-api-version", "changed", '"1"', '"2"', None)
    ]


def test_added_removed_and_values_trimmed() -> None:
    assert rows((("a", " 1 "),), (("A", "1"), ("b", "2"))) == [("b", "added", None, '"2"', None)]
    assert rows((("a", "1"),), ()) == [("a", "removed", '"1"', None, None)]


def test_repeated_headers_are_lists() -> None:
    assert rows((("vary", "a"), ("vary", "b")), (("Vary", "b"), ("vary", "a"))) == [
        ("vary", "order", '["a","b"]', '["b","a"]', None)
    ]
    assert rows((("link", "x"),), (("link", "x"), ("link", "y"))) == [
        ("link", "changed", '"x"', '["x","y"]', None)
    ]


@pytest.mark.parametrize("name", sorted(headers.ALWAYS_DIFFERENT))
def test_headers_that_always_differ_are_not_compared(name: str) -> None:
    assert rows(((name, "1"),), ((name.upper(), "2"),)) == []
    assert rows(((name, "1"),), ()) == []
    compare_all = Rules.from_mapping({"ignore": {"default_headers": False}})
    assert rows(((name, "1"),), ((name, "2"),), compare_all) == [
        (name, "changed", '"1"', '"2"', None)
    ]


@pytest.mark.parametrize("name", sorted(headers.FRAMING))
def test_framing_headers_count_only_when_the_bodies_really_differ(name: str) -> None:
    assert rows(((name, "10"),), ((name, "12"),), settled=True) == []
    assert rows(((name, "10"),), ((name, "12"),), settled=False) == [
        (name, "changed", '"10"', '"12"', None)
    ]


def test_content_length_follows_the_body_comparison() -> None:
    json = ("content-type", "application/json")

    def pair(a: bytes | None, b: bytes | None, truncated: bool = False) -> list[str]:
        result = diff_pair(
            Message(200, (json, ("content-length", str(len(a or b"")))), a, truncated),
            Message(200, (json, ("content-length", str(len(b or b"")))), b),
            Rules.from_mapping({"ignore": {"body": ["$.at"]}}),
        )
        return [f"{d.part} {d.path}" for d in result.diffs if not d.noise]

    assert pair(b'{"a": 1}', b'{ "a": 1 }') == []  # equal bodies
    assert pair(b'{"at": 1}', b'{"at": 100}') == []  # only noise in the bodies
    assert pair(b'{"a": 1}', b'{"a": 100}') == ["header content-length", "body $.a"]
    assert pair(b'{"a": 1}', b'{"a": 1}') == []
    assert pair(b'{"a": 1', b'{"a": 100}', truncated=True) == []  # not comparable: no evidence
    assert pair(None, b'{"a": 100}') == ["header content-length"]  # the only evidence there is


def test_ignore_rules_make_noise_rows() -> None:
    rules = Rules.from_mapping({"ignore": {"headers": ["X-Cache", "x-b3-*"]}})
    assert rows((("x-cache", "HIT"), ("x-b3-spanid", "1")), (("x-cache", "MISS"),), rules) == [
        ("x-cache", "changed", '"HIT"', '"MISS"', "rule: ignore header x-cache"),
        ("x-b3-spanid", "removed", '"1"', None, "rule: ignore header x-b3-*"),
    ]


def test_redacted_headers_only_differ_in_presence() -> None:
    rules = Rules.from_mapping({"redact": {"headers": ["x-session"]}})
    a = (("authorization", "Bearer a"), ("x-session", "s1"))
    b = (("Authorization", "Bearer b"), ("cookie", "c=1"))
    assert rows(a, b, rules) == [
        ("x-session", "removed", '"[redacted]"', None, None),
        ("cookie", "added", None, '"[redacted]"', None),
    ]
    assert headers.redact(a, rules) == (
        ("authorization", "[redacted]"),
        ("x-session", "[redacted]"),
    )
