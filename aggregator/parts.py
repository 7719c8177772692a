"""What the Aggregator's parts share: the config (swapped on reload), the clock, storage."""

from __future__ import annotations

import threading
from collections.abc import Callable

from aggregator import clock as _clock
from aggregator.config import Config
from aggregator.storage import FeedState, Storage
from aggregator.types import Feed


class Shared:
    """The config, clock and storage of one Aggregator, handed to each of its parts.

    Storage is opened on first use, not when wired: a command that only fetches (the check
    of `feeds add`) creates no database.
    """

    def __init__(
        self, config: Config, clock: _clock.Clock, open_storage: Callable[[], Storage]
    ) -> None:
        self.config = config  # replaced as a whole by Aggregator.reconfigure
        self.clock = clock
        self._open = open_storage
        self._storage: Storage | None = None
        self._lock = threading.Lock()

    @property
    def storage(self) -> Storage:
        """The storage, opened on first use.

        Raises:
            StorageError: it cannot be opened.
        """
        with self._lock:
            if self._storage is None:
                self._storage = self._open()
            return self._storage

    def close(self) -> None:
        """Close the storage, if it was opened."""
        with self._lock:
            storage = self._storage
        if storage is not None:
            storage.close()


class Part:
    """One part of the Aggregator: reads the shared config, clock and storage."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared

    @property
    def config(self) -> Config:
        return self._shared.config

    @property
    def storage(self) -> Storage:
        return self._shared.storage

    @property
    def clock(self) -> _clock.Clock:
        return self._shared.clock

    def _state(self, feed: Feed) -> FeedState | None:
        state = self.storage.feed_state(feed.url)
        if state is None:  # a feed added to the config since this Aggregator was made
            self.storage.sync_feeds([feed], self.clock())
            state = self.storage.feed_state(feed.url)
        return state
