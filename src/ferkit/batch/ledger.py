"""The driver's bookkeeping of one run, in a temporary SQLite database on disk (deleted when closed), so that its
memory does not grow with the inputs: the plan's tasks, the finished ones (the part holding each one's rows), and
the rows of an earlier OUT. SQLite's page cache (a few MB) is all of it that stays in memory.

A run fills it in this order: add(tasks) the plan; finished() the parts of an interrupted run; previous() the
earlier OUT's rows (then retry_errors() when asked); todo() the chunks left, read as the engine takes them, with
finished() called for each chunk as it comes back; combined() the rows of OUT, in plan order.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from .inputs import Chunk, Task, chunks
from .output import read_part

_SCHEMA = """
CREATE TABLE task (idx INTEGER PRIMARY KEY, source TEXT, kind TEXT, start INTEGER, stop INTEGER, video_fps REAL,
                   units INTEGER, path TEXT, key TEXT, skip INTEGER DEFAULT 0);
CREATE INDEX task_key ON task (key);
CREATE INDEX task_source ON task (source);
CREATE TABLE done (key TEXT PRIMARY KEY, part TEXT) WITHOUT ROWID;
CREATE TABLE old (seq INTEGER PRIMARY KEY, source TEXT, error INTEGER, row TEXT);
CREATE INDEX old_source ON old (source, seq);
"""
_TASK = "idx, source, kind, start, stop, video_fps, units, path"


class Ledger:
    """One run's bookkeeping (the module's docstring has the order of the calls)."""

    def __init__(self):
        self.db = sqlite3.connect("", isolation_level=None)  # "": private, on disk; no transactions: nothing to keep
        self.db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ filling
    def add(self, tasks: Iterable[Task]) -> None:
        """The plan's tasks, in order."""
        self.db.execute("BEGIN")
        self.db.executemany(f"INSERT INTO task ({_TASK}, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            ((t.index, t.source, t.kind, t.start, t.stop, t.video_fps, t.units, t.path, t.key)
                             for t in tasks))
        self.db.execute("COMMIT")

    def finished(self, pairs: Iterable[tuple[str, Path]]) -> None:
        """(task key, the part holding its rows) of finished tasks."""
        self.db.executemany("INSERT OR REPLACE INTO done VALUES (?, ?)", ((k, str(p)) for k, p in pairs))

    def previous(self, rows: Iterable[dict]) -> None:
        """The rows of an earlier OUT (streamed, kept as JSON text): its inputs are not analysed again."""
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO old (source, error, row) VALUES (?, ?, ?)",
                            ((r["source"], r["status"] == "error", json.dumps(r)) for r in rows))
        self.db.execute("COMMIT")

    def retry_errors(self) -> None:
        """The inputs of the plan with error rows in the earlier OUT are analysed again: their rows there are
        dropped, and their tasks finished in the parts of an unfinished run too."""
        self.db.executescript("""
            CREATE TEMP TABLE redo AS
                SELECT DISTINCT source FROM old WHERE error AND source IN (SELECT source FROM task);
            DELETE FROM old WHERE source IN (SELECT source FROM redo);
            DELETE FROM done WHERE key IN (SELECT key FROM task WHERE source IN (SELECT source FROM redo));
            DROP TABLE redo;""")

    # ------------------------------------------------------------ reading
    def count(self) -> int:
        """The tasks of the plan."""
        return self.db.execute("SELECT COUNT(*) FROM task").fetchone()[0]

    def todo(self, batch_size: int) -> Todo:
        """The chunks left: the plan's chunks less the tasks finished and the inputs in the earlier OUT (a chunk of
        which some are left keeps those, under its first one's index). Fixed now: finished() calls from here on
        do not change it."""
        self.db.execute("UPDATE task SET skip = key IN (SELECT key FROM done) OR source IN (SELECT source FROM old)")
        return Todo(self, batch_size)

    def _tasks(self, extra: str, join: str = "") -> Iterator[tuple[Task, tuple]]:
        """(task, the `extra` columns), in plan order."""
        for idx, source, kind, start, stop, video_fps, units, path, *more in self.db.execute(
                f"SELECT {_TASK}, {extra} FROM task {join} ORDER BY idx"):
            yield Task(idx, source, kind, start, stop, video_fps, units, path), more

    def combined(self) -> Iterator[dict]:
        """The rows of OUT, in plan order, streamed: each task's from its part (a part is read when its first task
        comes, and let go after its last), or, for inputs the earlier OUT holds, that file's rows where the input
        first appears; then the earlier OUT's inputs that are no longer among the inputs, in their order. An input's
        rows are always together."""
        open_parts: dict[str, dict[str, list[dict]]] = {}
        last_old = None
        for t, (part, in_old) in self._tasks("part, source IN (SELECT source FROM old)", "LEFT JOIN done USING (key)"):
            if in_old:
                if t.source != last_old:  # a video's later segments: its rows came with the first
                    last_old = t.source
                    yield from self._old_rows("WHERE source = ?", (t.source,))
                continue
            if part not in open_parts:
                open_parts[part] = read_part(Path(part))
            for row in open_parts[part].pop(t.key):
                row["source"] = t.source  # the plan's own string (the same text)
                yield row
            if not open_parts[part]:
                del open_parts[part]
        yield from self._old_rows(
            "JOIN (SELECT source, MIN(seq) AS first FROM old GROUP BY source) USING (source) "
            "WHERE source NOT IN (SELECT source FROM task)", order="first, seq")

    def _old_rows(self, where: str, args: tuple = (), order: str = "seq") -> Iterator[dict]:
        for (row,) in self.db.execute(f"SELECT row FROM old {where} ORDER BY {order}", args):
            yield json.loads(row)


class Todo:
    """The chunks left (Ledger.todo), read from the ledger as they are taken; len(): how many, `tasks` and
    `units` (images and analysed frames) in them."""

    def __init__(self, ledger: Ledger, batch_size: int):
        self.ledger, self.batch_size = ledger, batch_size
        self.count = self.tasks = self.units = 0
        for c in self:
            self.count += 1
            self.tasks += len(c.tasks)
            self.units += c.units

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Chunk]:
        skip: set[int] = set()  # of the tasks read and not chunked yet only: a few
        marked = self.ledger._tasks("skip")  # not `done`, which the run adds to while this reads

        def tasks():
            for t, (skipped,) in marked:
                if skipped:
                    skip.add(t.index)
                yield t

        for c in chunks(tasks(), self.batch_size):
            left = tuple(t for t in c.tasks if t.index not in skip)
            skip.difference_update(t.index for t in c.tasks)
            if left:
                yield Chunk(left[0].index, left, c.attempt) if len(left) < len(c.tasks) else c
