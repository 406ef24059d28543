"""The errors shadowdiff raises on purpose. Each carries a message that says what failed, where,
and what to try next; the CLI prints it without a traceback and exits with ``exit_code``."""

from __future__ import annotations


class ShadowdiffError(Exception):
    """Base of every expected failure."""

    exit_code = 2


class InputError(ShadowdiffError):
    """An input (file, directory, glob) cannot be used as a whole."""


class ConfigError(ShadowdiffError):
    """A flag, rules file or pipeline file is wrong."""


class ConservationError(ShadowdiffError):
    """Records read do not add up to paired + orphaned + duplicates + rejected: a bug, never
    silently ignored."""

    exit_code = 3
