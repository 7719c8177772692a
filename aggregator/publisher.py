"""Publishes digests: makes them from storage, writes their files and the archive, the
daily digest."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from aggregator.exceptions import ConfigError
from aggregator.parts import Part, Shared
from aggregator.storage import DigestRun, EntryRange
from aggregator.types import Digest, Entry, Format, Story, Topic, TopicGroup

if TYPE_CHECKING:
    from aggregator.dedup.topics import Grouping
    from aggregator.mailer import EmailResult

log = logging.getLogger("aggregator")

EXTENSIONS = {Format.HTML: "html", Format.TEXT: "txt", Format.JSON: "json"}
#: Windows (by length) whose sections are kept for filing: Now's and a few `?since=` ones.
KEPT_WINDOWS = 4


#: How many days before a daily digest's day its late arrivals may be dated, at most: a
#: daemon started again after weeks shows the last week it missed, not every entry
#: stored since its digest before (docs/digests.md).
LATE_DAYS = 7


@dataclass(frozen=True)
class Window:
    """A digest's time window: whole days [first, last] in the digest timezone."""

    first: date
    last: date

    @property
    def name(self) -> str:
        return self.first.isoformat() if self.first == self.last else f"{self.first}_{self.last}"


class Published(NamedTuple):
    """What `Aggregator.publish_daily` did."""

    window: Window
    digest: Digest
    paths: tuple[Path, ...]
    emails: tuple[EmailResult, ...] = ()


class DailyRead(NamedTuple):
    """What the daily digest of a day reads (`daily_read`)."""

    since: datetime  # its window, the day: [since, until)
    until: datetime
    #: Its entries: the missed days' and its own, all; the week's before, stored since.
    ranges: tuple[EntryRange, ...]
    late_since: datetime | None  # when the daily digest before it was made (None: none was)
    #: Where the days between that digest's day and its own start (None: none was made).
    missed_since: datetime | None
    #: Where that digest's day starts: a feed first stored since it was made (a new one)
    #: brings no late arrival dated before (its backlog, not news that came late).
    backlog_before: datetime | None = None


def day_start(day: date, tz: ZoneInfo, days: int = 0) -> datetime:
    """Midnight starting `day` (`days` later) in `tz`."""
    return datetime.combine(day + timedelta(days=days), time.min, tz)


def daily_read(day: date, tz: ZoneInfo, previous: DigestRun | None, made: datetime) -> DailyRead:
    """The entries the daily digest of `day` made at `made` shows, given the daily digest
    made last for a day before it (`previous`; None: none was, this is the store's first).

    Those published on `day`, and its late arrivals, the entries dated before it that no
    daily digest showed: those of the days between `previous`'s and `day` (their digests
    were not made: the daemon was down over their digest times, and makes only the
    latest), and those dated before it and first stored since `previous` was made (a
    feed that backdates its items, or was down for days). None in the store's first (no digest
    missed anything), and none dated more than `LATE_DAYS` before `day` (a month the
    daemon was down is not news that came late); nor, of a feed first stored since
    `previous` was made, any dated before `previous`'s day (`backlog_before`: its
    backlog, not late news; `Publisher.make_daily` leaves them out, and copies stored
    again of articles an earlier digest could show).

    Each only if first stored before `made`, when it reads them: one stored since is the
    next digest's (first stored since this one was made), one stored at that very time
    too. So each entry the read can see is in one of the two, never both.
    """
    since, until = day_start(day, tz), day_start(day, tz, 1)
    if previous is None:
        return DailyRead(since, until, (EntryRange(since, until, None, made),), None, None)
    earliest = day_start(day, tz, -LATE_DAYS)
    missed = max(earliest, day_start(previous.day, tz, 1))
    ranges = [EntryRange(missed, until, None, made)]  # the missed days' and its own: all
    if earliest < missed:  # the days shown before: what was stored since
        ranges.append(EntryRange(earliest, missed, previous.made, made))
    backlog = day_start(previous.day, tz)
    return DailyRead(since, until, tuple(ranges), previous.made, missed, backlog)


def with_day_since(read: DailyRead) -> DailyRead:
    """`read` with the day's own entries whenever they were stored: a day's digest asked
    for after its daily digest was made (`Publisher.make_day`) shows that digest's late
    arrivals, and the day's news stored since as well (the next daily digest has them as
    late arrivals too)."""
    own = EntryRange(read.since, read.until)
    ranges = [own]
    for part in read.ranges:  # each part's days before the day itself, as the daily read
        if part.published_since < read.since:
            ranges.append(part._replace(published_before=min(part.published_before, read.since)))
    return read._replace(ranges=tuple(ranges))


class Publisher(Part):
    """Makes digests from storage and writes them (files, archive, the daily one)."""

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        #: The last stories grouped (with the settings and whether incrementally), and
        #: their sections.
        self._last_grouped: (
            tuple[tuple[Sequence[Topic], int, bool], list[Story], tuple[TopicGroup, ...]] | None
        ) = None
        #: The last sections clustered from scratch for `incremental` calls, and when, by
        #: the window's length (Now's 24 hours, a `?since=` window's own: each files into
        #: its own sections), the `KEPT_WINDOWS` used last.
        self._clustered: dict[timedelta, tuple[Grouping, datetime]] = {}
        #: One grouping at a time: a view made beside another of the same stories (the
        #: server remakes its views in parallel) takes the first one's (`_last_grouped`).
        self._grouping = threading.Lock()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.digest.timezone)

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    def make_digest(self, window: Window) -> Digest:
        """Collect the entries published in the window into stories under topics, in each
        the stories the most feeds carry first (`topics.most_covered_first`)."""
        from aggregator.dedup.topics import most_covered_first

        since, until = day_start(window.first, self.tz), day_start(window.last, self.tz, 1)
        digest = self.digest_between(since, until)
        return replace(digest, topics=most_covered_first(digest.topics))

    def make_daily(self, day: date, *, made: datetime | None = None) -> Digest:
        """The daily digest of `day`: its entries, and its late arrivals (`daily_read`),
        grouped together, in each topic the stories the most feeds carry first.

        `made`: the time it was made (`digest_made`), to make it again as it was: the
        entries stored since are not in it, they are the next one's. Default now: it is
        made when its entries are read, and recorded as made then (`record_digest`), the
        time read under the store's write lock (`write_barrier`): every entry first seen
        before it is stored by then, so the next one's late arrivals, first seen since,
        leave out none this one does not show.
        """
        generated_at = made if made is not None else self.storage.write_barrier(self.clock)
        return self._daily(day, generated_at, generated_at)

    def make_day(self, day: date) -> Digest:
        """The digest of `day` asked for by its date (`aggregator digest --date`): once the
        daily digest of `day` was made, that digest as it was made, late arrivals and all
        (no other digest shows them), with the day's entries stored since; before, the
        day's window (`make_digest`)."""
        made = self.digest_made(day)
        if made is None:
            return self.make_digest(Window(day, day))
        return self._daily(day, made, self.clock(), whole_day=True)

    def _daily(
        self, day: date, made: datetime, generated_at: datetime, *, whole_day: bool = False
    ) -> Digest:
        """The daily digest of `day` made at `made` (its read: `daily_read`), dated
        `generated_at`; `whole_day`: with the day's entries stored since (`with_day_since`)."""
        from aggregator.dedup.topics import most_covered_first

        read = daily_read(day, self.tz, self.storage.digest_made_before(day), made)
        if whole_day:
            read = with_day_since(read)
        entries = self.storage.entries_in(read.ranges)
        if read.late_since is not None:
            entries = self._news(entries, read, made)
        digest = self._digest_of(read.since, read.until, entries, generated_at, read)
        return replace(digest, topics=most_covered_first(digest.topics))

    def _news(self, entries: list[Entry], read: DailyRead, made: datetime) -> list[Entry]:
        """A daily digest's entries (`read`, made at `made`) without the late arrivals that
        are not news: a new feed's backlog (dated before the previous digest's day, of a
        feed whose first entries were stored since it was made), and copies stored again
        of articles an earlier daily digest could show (of an entry stored before it was
        made and dated before the days whose digests were not made)."""
        assert read.late_since is not None and read.backlog_before is not None
        backlog = read.backlog_before
        late = [e for e in entries if e.published < read.since]
        # Which feeds are new reads every entry (by feed): asked only when it can matter.
        new = (
            self.storage.feed_urls_added_between(read.late_since, made)
            if any(e.published < backlog for e in late)
            else frozenset()
        )
        placed = [
            (e.story_id, e.article_id)
            for e in late
            if e.story_id is not None and e.article_id is not None
        ]
        missed = read.missed_since if read.missed_since is not None else read.since
        shown = self.storage.articles_stored(
            placed, stored_before=read.late_since, dated_before=missed
        )
        return [
            e
            for e in entries
            if e.published >= read.since
            or ((e.published >= backlog or e.feed_url not in new) and e.article_id not in shown)
        ]

    def make_again(self, window: Window) -> Digest:
        """The window's digest made again (to retry its email): the daily digest as it was
        made, late arrivals and all, when the window is a day whose daily digest was made
        (they are in no other; what was stored since is the next one's); else the
        window's (`make_digest`)."""
        made = self.digest_made(window.first) if window.first == window.last else None
        if made is not None:
            return self.make_daily(window.first, made=made)
        return self.make_digest(window)

    def digest_between(
        self,
        since: datetime,
        until: datetime,
        *,
        new_feeds: bool = True,
        incremental: bool = False,
    ) -> Digest:
        """Collect the entries published in [since, until) into stories under topics, as
        a digest does (the served Now page's window is the last 24 hours); `new_feeds`:
        name the feeds that brought their first entries then (the served pages do not
        show them, and finding them reads every entry); `incremental`: file the stories
        into the sections last clustered when they are still current (`topics.regroup`,
        `topics.regrouping_due`: docs/topics.md) rather than cluster them again, as the
        served Now page does after a poll."""
        generated_at = self.clock()  # when its entries are read
        entries = self.storage.entries_between(since, until)
        return self._digest_of(
            since, until, entries, generated_at, new_feeds=new_feeds, incremental=incremental
        )

    def _digest_of(
        self,
        since: datetime,
        until: datetime,
        entries: list[Entry],
        generated_at: datetime,
        daily: DailyRead | None = None,
        *,
        new_feeds: bool = True,
        incremental: bool = False,
    ) -> Digest:
        """The digest of [since, until) showing `entries` (read at `generated_at`), in
        stories under topics (as `digest_between` says); `daily`: a daily digest's read,
        whose late arrivals are among them, grouped with the window's (a late report of a
        story the window has is one more of its sources)."""
        from aggregator.dedup.group import group_stories
        from aggregator.dedup.topics import group_by_topic

        stories = group_stories(entries)
        settings = (self.config.topics, self.config.digest.max_sections, incremental)
        with self._grouping:
            last = self._last_grouped
            # The served Now page is made again after every write (a poll that found nothing
            # new, the window's minute turning): the same stories need not be grouped again.
            if last is not None and last[0] == settings and last[1] == stories:
                topics = last[2]
            else:
                if incremental:
                    topics = self._filed(stories, until - since)
                else:
                    topics = group_by_topic(stories, settings[0], max_sections=settings[1])
                self._last_grouped = (settings, stories, topics)
        return Digest(
            since=since,
            until=until,
            generated_at=generated_at,
            timezone=self.config.digest.timezone,
            topics=topics,
            new_feeds=tuple(self.storage.feeds_added_between(since, until)) if new_feeds else (),
            late_since=daily.late_since if daily is not None else None,
            missed_since=daily.missed_since if daily is not None else None,
        )

    def _filed(self, stories: list[Story], length: timedelta) -> tuple[TopicGroup, ...]:
        """The stories under the sections last clustered for a window of this `length`, or
        under new ones when due."""
        from aggregator.dedup.topics import grouping, regroup, regrouping_due

        topics, limit = self.config.topics, self.config.digest.max_sections
        now = self.clock()
        last = self._clustered.get(length)
        age = (now - last[1]).total_seconds() if last is not None else 0.0
        if age < 0:  # the clock was set back: its age is unknown
            age = float("inf")
        if last is None or regrouping_due(last[0], stories, topics, limit, age):
            made = grouping(stories, topics, max_sections=limit, to_regroup=True)
            self._clustered.pop(length, None)
            self._clustered[length] = (made, now)
            while len(self._clustered) > KEPT_WINDOWS:
                del self._clustered[next(iter(self._clustered))]
            log.debug("sections clustered again: %d stories", len(stories))
            return made.groups
        log.debug("stories filed into the sections kept: %d stories", len(stories))
        self._clustered[length] = self._clustered.pop(length)  # used last: let go last
        return regroup(last[0], stories).groups

    def digest_path(self, window: Window, fmt: Format) -> Path:
        return self.config.digest.output / f"{window.name}.{EXTENSIONS[fmt]}"

    def write_digest(self, digest: Digest, fmt: Format, path: Path) -> Path:
        """Render the digest and write it atomically to `path` (a file of its own, not archived).

        Raises:
            AggregatorError: the file cannot be written.
        """
        from aggregator.digest.render import render
        from aggregator.digest.write import write_atomic

        write_atomic(path, render(digest, fmt))
        return path

    def write_digest_files(self, window: Window, digest: Digest) -> tuple[Path, ...]:
        """Write the window's digest into the output folder in every format, then the archive.

        The files are ``<window name>.html``, ``.txt`` and ``.json``; index.html and
        feed.xml are then rewritten to include them.

        Returns:
            The paths written, in Format order, then index.html and feed.xml.

        Raises:
            AggregatorError: a file cannot be written.
        """
        from aggregator.digest.render import render
        from aggregator.digest.write import write_atomic

        self.check_output()
        base_url = self.config.digest.base_url
        paths = []
        for fmt in Format:
            path = self.digest_path(window, fmt)
            if fmt is Format.HTML:
                # The page sits next to the archive, so relative links always work.
                text = render(digest, fmt, archive_url="index.html", feed_url="feed.xml")
            elif fmt is Format.TEXT:
                index = f"{base_url}index.html" if base_url else None
                text = render(digest, fmt, archive_url=index)
            else:
                text = render(digest, fmt)
            write_atomic(path, text)
            paths.append(path)
        return (*paths, *self.write_archive())

    def check_output(self) -> None:
        """Check that [digest] output is a folder, or can become one.

        Raises:
            ConfigError: it, or a folder above it, is a file.
        """
        output = self.config.digest.output
        for folder in (output, *output.parents):
            if folder.exists():
                if not folder.is_dir():
                    raise ConfigError(
                        f"{folder} is a file, not a folder for the digests",
                        path=str(self.config.path),
                        key="digest.output",
                    )
                return

    def write_archive(self) -> tuple[Path, Path]:
        """Rewrite the output folder's index.html and feed.xml from the digests it holds.

        Raises:
            AggregatorError: a file cannot be written.
        """
        from aggregator.digest.write import write_archive

        self.check_output()
        return write_archive(
            self.config.digest.output,
            now=self.clock(),
            timezone=self.config.digest.timezone,
            base_url=self.config.digest.base_url,
        )

    def publish_daily(
        self,
        window: Window | None = None,
        *,
        mail: Callable[[Window, Digest], list[EmailResult]] | None = None,
    ) -> Published:
        """The daily job: write the last whole day's daily digest (with its late arrivals:
        `make_daily`) in every format, and the archive, then email it when [digest.email]
        is configured.

        Files come first and do not depend on the email: a failed send is recorded (see
        `email_status`) and retried later (`retry_emails`, also called here), never raised.

        Args:
            window: The day to publish (a window of one day); default yesterday in the
                digest timezone.
            mail: Emails the digest (Mailer.mail_daily); None to write the files only.

        Returns:
            The window, the digest, the files written and what happened to each email.

        Raises:
            AggregatorError: a file cannot be written.
        """
        if window is None:
            yesterday = self.today() - timedelta(days=1)
            window = Window(yesterday, yesterday)
        if window.first != window.last:
            raise ValueError(f"a daily digest is of one day, not {window.name}")
        digest = self.make_daily(window.first)
        paths = self.write_digest_files(window, digest)
        for path in paths:
            log.info("digest written: %s", path)
        emails = mail(window, digest) if mail is not None else []
        return Published(window, digest, paths, tuple(emails))

    def digest_made(self, day: date) -> datetime | None:
        """When the daily digest of `day` was made, or None if it has not been."""
        return self.storage.digest_made(day)

    def making_digest(self) -> AbstractContextManager[None]:
        """Hold the store's digest lock: on a shared store, one process at a time checks,
        makes and records the daily digest, so it is made once (Storage.hold)."""
        return self.storage.hold("digest")

    def record_digest(self, day: date, *, made: datetime) -> None:
        """Record that the daily digest of `day` was made at `made`, when it read its
        entries (its `generated_at`): the daemon makes it once, and the next one's late
        arrivals are those stored since (an entry stored while it was written and mailed
        is in neither otherwise).

        Raises:
            StorageError: it could not be recorded.
        """
        self.storage.record_digest(day, now=made)

    def first_published(self) -> datetime | None:
        """When the earliest stored entry was published (None: no entry yet)."""
        return self.storage.first_published()
