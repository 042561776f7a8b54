"""Putting staged generators in place from one thread, in batches (see VarsStore.commit).

Workers stage generators in parallel; the committer takes whatever has been staged since its last
batch and commits it with one syncfs, so a run of hundreds of generators waits for the disk a few
dozen times instead of once per generator. Generators are committed in the order they were staged,
and a dependent is staged only after its dependency, so dependencies always go live first. The
syncfs before a batch goes live also makes the swaps of the batch before it durable; one more after
the last batch covers the rest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.vars.store import Staged, VarsStore, discard

Committed = Callable[[list[Staged], list[Path]], None]


class Committer:
    """The commit thread of one `generate` run: `submit` staged generators, then `close`."""

    def __init__(self, store: VarsStore, committed: Committed) -> None:
        self._store = store
        self._committed = committed
        self._queue: queue.SimpleQueue[Staged | None] = queue.SimpleQueue()
        self.error: BaseException | None = None  # the first failed commit; later stages are discarded
        self._thread = threading.Thread(target=self._loop, name="fleet-vars-commit", daemon=True)
        self._thread.start()

    def submit(self, staged: Staged) -> None:
        self._queue.put(staged)

    def close(self) -> BaseException | None:
        """Commit everything submitted so far, stop, and return the first error (None if all went in)."""
        self._queue.put(None)
        self._thread.join()
        return self.error

    def _loop(self) -> None:
        closing = False
        last: list[Path] = []  # the newest batch in place; each commit's syncfs makes the one before durable
        while not closing:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            staged = [s for s in batch if s is not None]
            closing = len(staged) < len(batch)
            if self.error is not None:
                for s in staged:
                    discard(s)
                continue
            try:
                written = self._store.commit(staged)
                last = written or last
                self._committed(staged, written)
            except BaseException as e:  # reported by close(); the rest is discarded
                self.error = e
                for s in staged:  # what went live stays; a discarded staging folder never touches it
                    discard(s)
        if last:
            try:
                fsutil.sync_filesystem(last)
            except BaseException as e:
                self.error = self.error or e
