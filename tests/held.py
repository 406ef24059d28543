"""Watching what a reading holds: each batch a generator gives is weakly referenced, and
before the next is asked for, the ones still alive are noted (a reader that keeps a batch
through the making of the next holds two at once)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Watch(Generic[T]):
    """The batches given (``given``) and the numbers of those found alive when the next was
    asked for (``held``: empty when a reader lets each go in time)."""

    given: list[weakref.ref[T]] = field(default_factory=list)
    held: list[int] = field(default_factory=list)

    def watched(self, batches: Iterator[T]) -> Iterator[T]:
        while True:
            gc.collect()  # only references count, not cycles awaiting the collector
            self.held.extend(n for n, ref in enumerate(self.given) if ref() is not None)
            batch = next(batches, None)
            if batch is None:
                return
            self.given.append(weakref.ref(batch))
            yield batch
            del batch
