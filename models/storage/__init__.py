"""The storage layer: every SQL statement and ORM call, behind named functions (docs/architecture.md)."""
