"""shadowdiff: diff mirrored (shadow) HTTP traffic into queryable Parquet.

>>> import shadowdiff
>>> result = shadowdiff.run(primary=["logs/v1"], mirror=["logs/v2"], out="out/run1")
>>> con = shadowdiff.open("out/run1")
>>> con.sql("SELECT endpoint, count(*) FROM pairs WHERE outcome = 'diverged' GROUP BY 1")
"""

from __future__ import annotations

__version__ = "0.1.0"

from shadowdiff.api import run  # noqa: E402
from shadowdiff.query import open  # noqa: E402, A004

__all__ = ["open", "run", "__version__"]
