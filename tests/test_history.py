"""Practice history in SQLite: save, list, progress; the file survives a re-open."""

from __future__ import annotations

import sqlite3

import pytest

from review.history import DB_NAME, get_attempt, list_attempts, progress_series, save_attempt


def _save(ws, prompt_id, t0, total, **kw):
    return save_attempt(ws, prompt_id=prompt_id, started_at=t0, finished_at=t0 + 1800, estimates={"peak_qps": 347.0},
                        design_yaml="name: x\n", scores={"total": total, "cost": 4.0}, **kw)


def test_round_trip_and_reopen(tmp_path):
    assert list_attempts(tmp_path) == [] and progress_series(tmp_path) == []
    a = _save(tmp_path, "serve-10m", 1_000_000.0, 55.0)
    b = _save(tmp_path, "rag-2m", 1_010_000.0, 70.5, time_taken_s=1500)
    assert (tmp_path / DB_NAME).is_file()
    # A fresh connection (what an app restart does) sees both, newest first.
    rows = list_attempts(tmp_path)
    assert [r.id for r in rows] == [b, a]
    assert rows[0].time_taken_s == 1500 and rows[1].time_taken_s == 1800
    assert rows[1].estimates == {"peak_qps": 347.0} and rows[1].design_yaml == "name: x\n"
    assert get_attempt(tmp_path, a).scores == {"total": 55.0, "cost": 4.0}
    assert [r.prompt_id for r in list_attempts(tmp_path, "rag-2m")] == ["rag-2m"]
    series = progress_series(tmp_path)
    assert [s["total"] for s in series] == [55.0, 70.5] and [s["n"] for s in series] == [1, 2]
    assert series[0]["cost"] == 4.0 and series[0]["time_taken_min"] == 30.0
    # The table is plain SQLite that other tools can read.
    with sqlite3.connect(tmp_path / DB_NAME) as con:
        assert con.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 2


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="before"):
        save_attempt(tmp_path, prompt_id="x", started_at=10, finished_at=5, estimates={}, design_yaml="", scores={})
    with pytest.raises(ValueError, match="prompt_id"):
        save_attempt(tmp_path, prompt_id="", started_at=0, finished_at=5, estimates={}, design_yaml="", scores={})
