"""Message search SQL: the matches of one channel, as a CTE `hits` (models/storage/messages.py pages it).

A query is split on whitespace into terms; a message matches when it holds every term:
- a term of letters and digits only is a whole word, case-insensitive, found through the index
  (PostgreSQL: GIN `ix_messages_search`, migration 0003_input; SQLite: FTS5 `messages_fts`);
- a term with anything else in it (`100%`, `:)`, `%`, `it's`, `under_score`) must also appear
  literally (case-insensitive) in the message; its words, if any, still go through the index
  (so `100%` reads the index for `100`), and only a query with no word at all (`%`, `:)`) reads
  the channel's messages one by one (through the (channel_id, id) btree).
User input is never query syntax: words are phrase queries built by the database from a
parameter, literal terms are compared with strpos/instr (no LIKE, so `%` and `_` are plain).

PostgreSQL's plan must not depend on planner statistics (a table never ANALYZEd walked the
channel's btree and computed to_tsvector per message): the channel is matched inside the index
condition (the lexeme 'channel <id>'), and the plain `channel_id + 0 = ...` recheck cannot use
the btree, so the GIN index is the only index that serves a word search.
"""
from __future__ import annotations

from typing import Any

from models import db


def split_query(query: str) -> tuple[list[str], list[str]]:
    """(terms for the index, terms to match literally), both lower-cased for the literal part."""
    words: list[str] = []
    literals: list[str] = []
    for term in query.split():
        if any(ch.isalnum() for ch in term):
            words.append(term)
        if not term.isalnum():
            literals.append(term.lower())
    return words, literals


# The indexed expression of ix_messages_search, written exactly as the migration writes it.
PG_VECTOR = "(to_tsvector('simple', m.content) || array_to_tsvector(ARRAY['channel ' || m.channel_id::text]))"


def hits_cte(columns: str, query: str, channel: int, *, postgres: bool | None = None) -> tuple[str, dict[str, Any]] | None:
    """`WITH hits AS (...)` with `columns` of the channel's matching messages (alias m), and its
    parameters; None when the query has no term at all."""
    words, literals = split_query(query)
    if not words and not literals:
        return None
    postgres = db.is_postgres() if postgres is None else postgres
    params: dict[str, Any] = {"channel": channel}
    conditions = []
    for i, literal in enumerate(literals):
        params[f"lit{i}"] = literal
        fn = "strpos" if postgres else "instr"
        conditions.append(f"{fn}(lower(m.content), %(lit{i})s) > 0")
    literal_sql = "".join(f" AND {c}" for c in conditions)
    if postgres:
        if words:
            # MATERIALIZED: without it the planner, seeing ORDER BY id LIMIT n, walks the channel
            # newest-first testing every message; the index finds the matches directly.
            tsquery = " && ".join(f"phraseto_tsquery('simple', %(w{i})s)" for i in range(len(words)))
            params.update({f"w{i}": w for i, w in enumerate(words)})
            params["channel_lexeme"] = f"'channel {int(channel)}'"
            where = (f"m.channel_id + 0 = %(channel)s AND {PG_VECTOR} @@ "
                     f"({tsquery} && CAST(%(channel_lexeme)s AS tsquery))")
        else:
            where = "m.channel_id = %(channel)s"
        return f"WITH hits AS MATERIALIZED (SELECT {columns} FROM messages m WHERE {where}{literal_sql})", params
    if words:
        # FTS5: each word as a string ("..." with inner quotes doubled) is a phrase of its tokens;
        # phrases side by side are ANDed. CROSS JOIN makes SQLite start from the full-text
        # matches, not from the channel's messages.
        params["fts"] = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        return (f"WITH hits AS (SELECT {columns} FROM messages_fts CROSS JOIN messages m "
                f"ON m.id = messages_fts.rowid WHERE messages_fts MATCH %(fts)s "
                f"AND m.channel_id = %(channel)s{literal_sql})", params)
    return f"WITH hits AS (SELECT {columns} FROM messages m WHERE m.channel_id = %(channel)s{literal_sql})", params
