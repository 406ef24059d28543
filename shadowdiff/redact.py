"""Secrets in URLs: query parameters whose names are credentials, and URL userinfo.

A redacted value becomes ``[redacted:<hash>]``, the hash keyed with a random key made for the
run and never stored: the same token on both sides still compares equal and a changed token is
still a change, while nobody can test a guess against the stored hash.

    >>> r = Redactor(("access_token",), key=b"k")
    >>> r.url("/api/users/7?access_token=abc&page=2")
    '/api/users/7?access_token=[redacted:342e519ce0]&page=2'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

# Query parameter names that carry credentials (compared without case). OAuth and OpenID
# (access_token, id_token, refresh_token, code, client_secret), API keys, passwords, signed
# URLs (AWS SigV4's X-Amz-*, signature, sig, Expires stays), session ids.
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
HASH_CHARS = 10


class Redactor:
    """Redacts the query parameters named ``names`` and any URL userinfo in text."""

    def __init__(self, names: Sequence[str], key: bytes | None = None) -> None:
        self.key = key if key is not None else secrets.token_bytes(16)
        alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
        self._query = re.compile(rf"([?&;](?:{alternatives})=)([^&#;\s\"']*)", re.IGNORECASE)
        # scheme://user:password@host, and an authority's user:password@host.
        self._userinfo = re.compile(r"(^|[a-zA-Z][a-zA-Z0-9+.-]*://)([^/?#@\s\"']+)@")
        # What may hold a secret at all, for a fast test in Arrow before any Python runs.
        self.suspect = rf"(?i)[?&;](?:{alternatives})=|@"

    def tag(self, value: str) -> str:
        digest = hmac.new(self.key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return f"[redacted:{digest.hexdigest()[:HASH_CHARS]}]"

    def url(self, text: str) -> str:
        """``text`` (a path, URL, authority or log excerpt) with its secrets redacted."""
        if "@" in text:
            text = self._userinfo.sub(lambda m: f"{m.group(1)}{self.tag(m.group(2))}@", text)
        if "=" in text:
            text = self._query.sub(lambda m: m.group(1) + self.tag(m.group(2)), text)
        return text

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
