"""Hypothesis profiles of the fuzz tests.

``shadowdiff-fuzz-ci`` (the default) is derandomized: every CI run tries the same examples, the
whole directory in well under two minutes on two cores. ``FUZZ_EXAMPLES=N`` switches to
``shadowdiff-fuzz-long``: random examples, ``N`` per test (a tenth of it for tests that run the
whole CLI), for a long local hunt::

    FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/fuzz --hypothesis-show-statistics

``FUZZ_SAVE=DIR`` keeps the last failing input of each test in DIR (Hypothesis replays the
minimal example last), ready to be copied into ``corpus/``. ``FUZZ_DB=DIR`` keeps Hypothesis's
example database there (none by default: nothing is written beside the repository).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_QUIET = [
    HealthCheck.too_slow,  # every example reads a file, many start DuckDB queries
    HealthCheck.data_too_large,  # seeds are whole log files
    HealthCheck.filter_too_much,
    HealthCheck.function_scoped_fixture,  # examples write into one scratch directory
    HealthCheck.large_base_example,
]
_DB = os.environ.get("FUZZ_DB")

settings.register_profile(
    "shadowdiff-fuzz-ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "shadowdiff-fuzz-long",
    derandomize=False,
    deadline=None,
    database=DirectoryBasedExampleDatabase(_DB) if _DB else None,
    print_blob=True,
    suppress_health_check=_QUIET,
)
