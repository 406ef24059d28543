"""``python -m shadowdiff``: the same command as ``shadowdiff``."""

from shadowdiff.cli import entry

entry()
