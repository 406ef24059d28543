"""Test support that ships with shadowdiff: a real-Envoy mirroring lab (``lab``), the two
backend versions with their planted differences (``backends``) and a seeded traffic driver
(``traffic``). Standard library only, plus an Envoy binary for the lab."""

from __future__ import annotations
