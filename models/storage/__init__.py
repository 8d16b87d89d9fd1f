"""The storage layer: every SQL statement behind a named function (issue 16). Callers pass a
connection from models.sql (or a session from models.db) and get rows back; no SQL outside."""
