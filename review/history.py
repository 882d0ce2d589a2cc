"""Practice history: attempts in an embedded SQLite file in the workspace (`attempts.sqlite`).

Usage::

    >>> import tempfile
    >>> from review.history import save_attempt, list_attempts, progress_series
    >>> ws = tempfile.mkdtemp()
    >>> aid = save_attempt(ws, prompt_id="serve-10m", started_at=0.0, finished_at=1800.0,
    ...                    estimates={"peak_qps": 347}, design_yaml="name: x\\n",
    ...                    scores={"total": 71.5, "cost": 4.0})
    >>> [a.prompt_id for a in list_attempts(ws)]
    ['serve-10m']
    >>> progress_series(ws)[0]["total"]
    71.5

Timestamps are Unix seconds (UTC); each call opens and closes its own connection, so a
Streamlit rerun or an app restart sees every committed attempt.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from components.errors import Refusal

__all__ = ["Attempt", "HistoryError", "DB_NAME", "db_path", "save_attempt", "list_attempts", "get_attempt", "progress_series",
           "save_drill", "list_drills", "save_round", "load_round", "update_attempt_scores"]

DB_NAME = "attempts.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    time_taken_s REAL NOT NULL,
    estimates_json TEXT NOT NULL,
    design_yaml TEXT NOT NULL,
    scores_json TEXT NOT NULL,
    total REAL
);
CREATE INDEX IF NOT EXISTS attempts_prompt ON attempts (prompt_id, finished_at);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL,
    updated_at REAL NOT NULL,
    state_json TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Attempt:
    id: int
    prompt_id: str
    started_at: float
    finished_at: float
    time_taken_s: float
    estimates: dict[str, Any]
    design_yaml: str
    scores: dict[str, Any]
    total: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def finished_iso(self) -> str:
        return datetime.fromtimestamp(self.finished_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def db_path(workspace: str | Path) -> Path:
    return Path(workspace) / DB_NAME


class HistoryError(Refusal):
    """attempts.sqlite could not be read or written (an unwritable or full workspace, a
    directory or a corrupt file where the database should be). The message names the file."""


@contextmanager
def _db(workspace: str | Path) -> Iterator[sqlite3.Connection]:
    """An open connection, closed afterwards; a failure of the file or of SQLite is a
    `HistoryError` naming the database (the page keeps the attempt and says so)."""
    try:
        with closing(_connect(workspace)) as con:
            yield con
    except (sqlite3.Error, OSError) as e:
        raise HistoryError(f"the attempts database {db_path(workspace)} could not be used: {e}") from e


def _connect(workspace: str | Path) -> sqlite3.Connection:
    path = db_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=10)
    con.executescript(_SCHEMA)
    return con


def save_attempt(
    workspace: str | Path,
    *,
    prompt_id: str,
    started_at: float,
    finished_at: float,
    estimates: dict[str, Any],
    design_yaml: str,
    scores: dict[str, Any],
    time_taken_s: float | None = None,
) -> int:
    """Store one attempt and return its id. `time_taken_s` defaults to finished − started
    (the page passes the timer's active time, which excludes pauses)."""
    if not prompt_id:
        raise ValueError("prompt_id is required")
    if finished_at < started_at:
        raise ValueError(f"finished_at ({finished_at}) is before started_at ({started_at})")
    taken = float(time_taken_s) if time_taken_s is not None else float(finished_at - started_at)
    total = scores.get("total") if isinstance(scores, dict) else None
    with _db(workspace) as con, con:
        cur = con.execute(
            "INSERT INTO attempts (prompt_id, started_at, finished_at, time_taken_s, estimates_json, design_yaml, scores_json, total)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (prompt_id, float(started_at), float(finished_at), taken, json.dumps(estimates, sort_keys=True),
             design_yaml, json.dumps(scores, sort_keys=True), None if total is None else float(total)),
        )
        return int(cur.lastrowid)


def _row(r: tuple) -> Attempt:
    return Attempt(id=r[0], prompt_id=r[1], started_at=r[2], finished_at=r[3], time_taken_s=r[4],
                   estimates=json.loads(r[5]), design_yaml=r[6], scores=json.loads(r[7]), total=r[8])


_COLS = "id, prompt_id, started_at, finished_at, time_taken_s, estimates_json, design_yaml, scores_json, total"


def list_attempts(workspace: str | Path, prompt_id: str | None = None, limit: int = 500) -> list[Attempt]:
    """Attempts, newest first (an empty list when the database does not exist yet)."""
    if not db_path(workspace).exists():
        return []
    with _db(workspace) as con:
        if prompt_id is None:
            rows = con.execute(f"SELECT {_COLS} FROM attempts ORDER BY finished_at DESC, id DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = con.execute(f"SELECT {_COLS} FROM attempts WHERE prompt_id = ? ORDER BY finished_at DESC, id DESC LIMIT ?",
                               (prompt_id, limit)).fetchall()
    return [_row(r) for r in rows]


def get_attempt(workspace: str | Path, attempt_id: int) -> Attempt | None:
    if not db_path(workspace).exists():
        return None
    with _db(workspace) as con:
        r = con.execute(f"SELECT {_COLS} FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
    return _row(r) if r else None


def progress_series(workspace: str | Path, prompt_id: str | None = None) -> list[dict[str, Any]]:
    """One row per attempt in time order: `n`, `finished_at` (ISO), `prompt_id`, `total`,
    `time_taken_min` and each rubric area's score — ready for an Altair line chart."""
    rows = []
    for n, a in enumerate(reversed(list_attempts(workspace, prompt_id)), start=1):
        row: dict[str, Any] = {
            "n": n,
            "attempt_id": a.id,
            "finished_at": datetime.fromtimestamp(a.finished_at, tz=timezone.utc).isoformat(),
            "prompt_id": a.prompt_id,
            "total": a.total,
            "time_taken_min": round(a.time_taken_s / 60, 2),
        }
        for k, v in a.scores.items():
            if k != "total" and isinstance(v, (int, float)):
                row[k] = float(v)
        rows.append(row)
    return rows


# --- drills of an attempt (issue 13: interviewer-mode follow-ups and their graded predictions) ----

_DRILL_SCHEMA = """
CREATE TABLE IF NOT EXISTS drills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id INTEGER,
    drill TEXT NOT NULL,
    prediction TEXT NOT NULL,
    verdict TEXT,
    score REAL,
    at REAL NOT NULL,
    result_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS drills_attempt ON drills (attempt_id, at);
"""


def save_drill(workspace: str | Path, attempt_id: int | None, result: Any, at: float | None = None) -> int:
    """Store one drill (a `review.drills.DrillResult`) with the attempt it belongs to; its id.

    >>> import tempfile
    >>> from designs.io import load_design
    >>> from review.drills import run_drill
    >>> ws = tempfile.mkdtemp()
    >>> r = run_drill(load_design("designs/library/llm_serving.yaml"), "lose_replica", prediction="TTFT p95 × 1.1")
    >>> _ = save_drill(ws, 7, r)
    >>> [(d["drill"], d["verdict"]) for d in list_drills(ws, 7)]
    [('lose_replica', 'good')]
    """
    import time as _time

    data = result.model_dump(mode="json") if hasattr(result, "model_dump") else dict(result)
    grade = data.get("grade") or {}
    pred = (data.get("prediction") or {}).get("text", "") if data.get("prediction") else ""
    with _db(workspace) as con:
        con.executescript(_DRILL_SCHEMA)
        cur = con.execute(
            "INSERT INTO drills (attempt_id, drill, prediction, verdict, score, at, result_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (attempt_id, data.get("drill", ""), pred, grade.get("verdict"), grade.get("score"),
             _time.time() if at is None else at, json.dumps(data)))
        con.commit()
        return int(cur.lastrowid)


def list_drills(workspace: str | Path, attempt_id: int | None = None) -> list[dict[str, Any]]:
    """The stored drills (of one attempt, or all), oldest first, each its `DrillResult` JSON."""
    with _db(workspace) as con:
        con.executescript(_DRILL_SCHEMA)
        q = "SELECT id, attempt_id, result_json FROM drills"
        rows = con.execute(q + (" WHERE attempt_id = ? ORDER BY at, id" if attempt_id is not None else " ORDER BY at, id"),
                           (attempt_id,) if attempt_id is not None else ()).fetchall()
    out = []
    for rid, aid, js in rows:
        d = json.loads(js)
        d.update(id=rid, attempt_id=aid, verdict=(d.get("grade") or {}).get("verdict"))
        out.append(d)
    return out


def update_attempt_scores(workspace: str | Path, attempt_id: int, scores: dict[str, Any]) -> bool:
    """Replace attempt `attempt_id`'s scores and total (the review re-graded with its drills,
    `review.grading.with_drills`); False when there is no such attempt.

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> aid = save_attempt(ws, prompt_id="p", started_at=0.0, finished_at=1.0, estimates={}, design_yaml="",
    ...                    scores={"total": 50.0})
    >>> update_attempt_scores(ws, aid, {"total": 55.0, "drills": 5.0}), get_attempt(ws, aid).scores["drills"]
    (True, 5.0)
    """
    total = scores.get("total")
    with _db(workspace) as con, con:
        cur = con.execute("UPDATE attempts SET scores_json = ?, total = ? WHERE id = ?",
                          (json.dumps(scores, sort_keys=True), None if total is None else float(total), int(attempt_id)))
        return cur.rowcount > 0


# --- a round in progress ---------------------------------------------------------------------


def save_round(workspace: str | Path, state: dict[str, Any], round_id: int | None = None) -> int:
    """Store the state of a practice round as it goes (prompt, timer, estimates, design YAML,
    review id); returns its id. A refresh of the page restores it with `load_round`.

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> rid = save_round(ws, {"prompt_id": "serve-10m", "started_at": 10.0})
    >>> save_round(ws, {"prompt_id": "serve-10m", "started_at": 10.0, "estimates": {"gpus": 8}}, rid) == rid
    True
    >>> load_round(ws, rid)["estimates"]
    {'gpus': 8}
    """
    prompt_id = state.get("prompt_id")
    if not prompt_id:
        raise ValueError("a round needs its prompt_id")
    text = json.dumps(state, sort_keys=True)
    now = datetime.now(timezone.utc).timestamp()
    with _db(workspace) as con, con:
        if round_id is not None:
            cur = con.execute("UPDATE rounds SET prompt_id = ?, updated_at = ?, state_json = ? WHERE id = ?",
                              (prompt_id, now, text, int(round_id)))
            if cur.rowcount:
                return int(round_id)
        cur = con.execute("INSERT INTO rounds (prompt_id, updated_at, state_json) VALUES (?, ?, ?)", (prompt_id, now, text))
        return int(cur.lastrowid)


def load_round(workspace: str | Path, round_id: int) -> dict[str, Any] | None:
    """The stored state of round `round_id`, or None."""
    if not db_path(workspace).exists():
        return None
    with _db(workspace) as con:
        r = con.execute("SELECT state_json FROM rounds WHERE id = ?", (int(round_id),)).fetchone()
    return json.loads(r[0]) if r else None
