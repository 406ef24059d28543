"""Secrets: credential query parameters, URL userinfo, JSON body fields with credential names,
and the values of secret headers.

A redacted value becomes ``[redacted:<hash>]``, the hash keyed with a random key made for the
run and never stored (the first hex digits of SHA-256 over the key and the value, computed alike
here and in DuckDB): the same token on both sides still compares equal and a changed token is
still a change, while nobody can test a guess against the stored hash.

    >>> r = Redactor(("access_token",), key=b"k")
    >>> r.url("/api/users/7?access_token=abc&page=2")
    '/api/users/7?access_token=[redacted:591c466493]&page=2'
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff.diff.model import TAG_PREFIX

# Names that carry credentials (compared without case), as query parameters and as JSON body
# fields. OAuth and OpenID (access_token, id_token, refresh_token, code, client_secret), API
# keys, passwords, signed URLs (AWS SigV4's X-Amz-*, signature, sig), session ids.
DEFAULT_QUERY_SECRETS = (
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "auth",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "code",
    "session",
    "sessionid",
    "session_id",
)
# JSON body fields redacted by default: the same names but two that JSON documents use far more
# often for other things than secrets (error codes, map keys); ``[redact] fields`` adds them back.
DEFAULT_FIELD_SECRETS = tuple(n for n in DEFAULT_QUERY_SECRETS if n not in ("code", "key"))
HASH_CHARS = 10


class Redactor:
    """Redacts the query parameters and JSON fields named ``names`` (``fields``: other names for
    the JSON fields), URL userinfo, and the headers named ``headers``, all with one run key."""

    def __init__(
        self,
        names: Sequence[str],
        key: bytes | None = None,
        fields: Sequence[str] | None = None,
        headers: Sequence[str] = (),
    ) -> None:
        self.key = (key if key is not None else secrets.token_bytes(16)).hex()
        self.fields = frozenset(n.lower() for n in (names if fields is None else fields))
        self.headers = tuple(h.lower() for h in headers)
        named = alternatives(names)
        self._query = re.compile(rf"([?&;](?:{named})=)([^&#;\s\"']*)", re.IGNORECASE)
        # scheme://user:password@host, and an authority's user:password@host.
        self._userinfo = re.compile(r"(^|[a-zA-Z][a-zA-Z0-9+.-]*://)([^/?#@\s\"']+)@")
        # What may hold a secret at all, for a fast test in Arrow before any Python runs.
        self.suspect = rf"(?i)[?&;](?:{named})=|@"
        # In a rejected line's excerpt: "name": "value" / name=value / name: value pairs of
        # the secret fields and headers, and bearer or basic credentials anywhere.
        loose = alternatives((*self.fields, *self.headers))
        self._pair = re.compile(
            rf"((?:\"|\b)(?:{loose})\"?\s*[:=]\s*\"?)([^\"\s,;&}}]+)", re.IGNORECASE
        )
        self._scheme = re.compile(r"(\b(?:bearer|basic|digest)\s+)([A-Za-z0-9._~+/=-]+)", re.I)
        # A JSON body that may hold a secret field: the quoted name then a colon.
        self._field_bytes = re.compile(
            rb'"(?:' + alternatives(self.fields).encode() + rb')"\s*:', re.IGNORECASE
        )

    def tag(self, value: str) -> str:
        digest = hashlib.sha256((self.key + value).encode("utf-8", "surrogatepass"))
        return f"{TAG_PREFIX}{digest.hexdigest()[:HASH_CHARS]}]"

    def tag_sql(self, expression: str) -> str:
        """The DuckDB expression of :meth:`tag` over ``expression`` (a string)."""
        digest = f"sha256('{self.key}' || {expression})"
        return f"('{TAG_PREFIX}' || left({digest}, {HASH_CHARS}) || ']')"

    # --- URLs ------------------------------------------------------------------------------

    def url(self, text: str) -> str:
        """``text`` (a path, URL or authority) with its secrets redacted."""
        if "@" in text:
            text = self._userinfo.sub(lambda m: f"{m.group(1)}{self.tag(m.group(2))}@", text)
        if "=" in text:
            text = self._query.sub(lambda m: m.group(1) + self.tag(m.group(2)), text)
        return text

    def form(self, data: bytes) -> bytes:
        """A form body (``a=1&password=x``) with its credential fields redacted."""
        text = "?" + data.decode("latin-1")  # byte for byte, whatever the charset
        return self._query.sub(lambda m: m.group(1) + self.tag(m.group(2)), text)[1:].encode(
            "latin-1"
        )

    def excerpt(self, text: str) -> str:
        """A rejected line's excerpt with what looks like a secret redacted: URLs as in
        :meth:`url`, secret fields and headers given as name/value pairs, bearer tokens."""
        text = self.url(text)
        text = self._scheme.sub(lambda m: m.group(1) + self.tag(m.group(2)), text)
        return self._pair.sub(lambda m: m.group(1) + self.value(m.group(2)), text)

    def dictionary(self, encoded: pa.DictionaryArray) -> pa.DictionaryArray | None:
        """``encoded`` with its distinct values redacted, or ``None`` when none holds a
        secret."""
        values = encoded.dictionary
        flagged = pc.match_substring_regex(values, self.suspect)
        if not pc.any(flagged).as_py():
            return None
        fixed = [
            self.url(value) if hit and value is not None else value
            for value, hit in zip(values.to_pylist(), flagged.to_pylist(), strict=True)
        ]
        return pa.DictionaryArray.from_arrays(encoded.indices, pa.array(fixed, pa.string()))

    def column(self, values: pa.ChunkedArray) -> pa.ChunkedArray | None:
        """``values`` redacted, or ``None`` when none of them holds a secret. Only the distinct
        values that may hold one reach Python (traffic repeats its paths)."""
        suspect = pc.match_substring_regex(values, self.suspect)
        if not pc.any(suspect).as_py():
            return None
        fixed = self.dictionary(pc.dictionary_encode(values).combine_chunks())
        return None if fixed is None else pa.chunked_array([fixed.cast(pa.string())])

    # --- JSON bodies -----------------------------------------------------------------------

    def may_hold_field(self, data: bytes) -> bool:
        """False only when no secret field can be in the JSON text ``data`` (an escaped name
        could spell one otherwise, so ``\\u`` anywhere counts as maybe)."""
        return bool(self.fields) and (b"\\u" in data or self._field_bytes.search(data) is not None)

    def document(self, node: Any) -> tuple[Any, bool]:
        """``node`` with the value of every secret field, at any depth, replaced by its tag,
        and whether anything was; untouched subtrees are shared, the input is not modified."""
        if isinstance(node, dict):
            out: dict[Any, Any] = {}
            changed = False
            for name, value in node.items():
                if isinstance(name, str) and name.lower() in self.fields and value is not None:
                    out[name] = self.value(value)
                    changed = True
                else:
                    out[name], hit = self.document(value)
                    changed = changed or hit
            return (out, True) if changed else (node, False)
        if isinstance(node, list):
            items = [self.document(item) for item in node]
            if any(hit for _, hit in items):
                return [item for item, _ in items], True
            return node, False
        return node, False

    def value(self, value: Any) -> str:
        """The tag of one JSON value: a string as it is, anything else as its JSON text."""
        if isinstance(value, str):
            return value if value.startswith(TAG_PREFIX) else self.tag(value)
        return self.tag(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


def alternatives(names: Sequence[str] | frozenset[str] | set[str]) -> str:
    """A regex alternation of ``names``, the longest first so a prefix never wins."""
    # With no names, "x^" (an x before the start of the text) never matches, in re and in RE2.
    return "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True)) or "x^"
