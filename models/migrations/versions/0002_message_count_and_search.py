"""message counter per channel, message search index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 01:00:00

- `channels.message_count`, kept by triggers on `messages` in the same transaction as every
  insert and delete (cascades from a deleted channel, server or account included), so a page's
  `total` is one row read instead of a COUNT over a million messages.
- Word search, case-insensitive, always within one channel:
  SQLite: an FTS5 external-content table `messages_fts` (tokenizer unicode61 without diacritic
  folding, so "й" stays distinct from "и" as in PostgreSQL) kept by triggers.
  PostgreSQL: a GIN index over (channel_id, to_tsvector('simple', content)) (btree_gin puts the
  channel in the same index, so a search never walks other channels' matches).
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


SQLITE_UP = [
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
           content, content='messages', content_rowid='id',
           tokenize='unicode61 remove_diacritics 0')""",
    """CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
           INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
           UPDATE channels SET message_count = message_count + 1 WHERE id = new.channel_id;
       END""",
    """CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
           INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
           UPDATE channels SET message_count = message_count - 1 WHERE id = old.channel_id;
       END""",
    """CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
           INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
           INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
       END""",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS messages_au",
    "DROP TRIGGER IF EXISTS messages_ad",
    "DROP TRIGGER IF EXISTS messages_ai",
    "DROP TABLE IF EXISTS messages_fts",
]

POSTGRES_UP = [
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    """CREATE INDEX ix_messages_search ON messages
           USING gin (channel_id, to_tsvector('simple'::regconfig, content))""",
    # Statement-level with transition tables: one UPDATE per statement, also when a channel's
    # million messages go at once by cascade.
    """CREATE FUNCTION messages_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           UPDATE channels c SET message_count = c.message_count + n.cnt
           FROM (SELECT channel_id, count(*) AS cnt FROM new_rows GROUP BY channel_id) n
           WHERE c.id = n.channel_id;
           RETURN NULL;
       END $$""",
    """CREATE FUNCTION messages_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           UPDATE channels c SET message_count = c.message_count - o.cnt
           FROM (SELECT channel_id, count(*) AS cnt FROM old_rows GROUP BY channel_id) o
           WHERE c.id = o.channel_id;
           RETURN NULL;
       END $$""",
    """CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
           REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
           EXECUTE FUNCTION messages_count_insert()""",
    """CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
           REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
           EXECUTE FUNCTION messages_count_delete()""",
]

POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS messages_count_delete ON messages",
    "DROP TRIGGER IF EXISTS messages_count_insert ON messages",
    "DROP FUNCTION IF EXISTS messages_count_delete()",
    "DROP FUNCTION IF EXISTS messages_count_insert()",
    "DROP INDEX IF EXISTS ix_messages_search",
]


def upgrade() -> None:
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_count', sa.Integer(), server_default='0', nullable=False))
    op.execute("UPDATE channels SET message_count = "
               "(SELECT count(*) FROM messages WHERE messages.channel_id = channels.id)")
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}.get(dialect, []):
        op.execute(statement)
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.drop_column('message_count')
