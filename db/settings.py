"""Key/value settings shared by stages (JSON values), read and written on the caller's cursor."""

from __future__ import annotations

import json

import duckdb


def get(cur: duckdb.DuckDBPyConnection, key: str) -> dict | None:
    row = cur.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else None


def put(cur: duckdb.DuckDBPyConnection, key: str, value: dict) -> None:
    cur.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, json.dumps(value)])
