"""messages.edited_by: who last edited a message when that was not its author

Revision ID: 0003_domain
Revises: 0002
Create Date: 2026-11-28 20:40:00

- `messages.edited_by`, nullable, references users(id) ON DELETE SET NULL: set by an edit from a
  moderator (MANAGE_MESSAGES or the site's staff), cleared by the author's own edit.
- A partial index on it (only the rows a moderator edited), so deleting an account finds the
  messages it edited without a scan of every message.

PostgreSQL: ADD COLUMN and the foreign key. SQLite: ADD COLUMN cannot add a table-level foreign
key (and an inline REFERENCES loses its ON DELETE on reflection), so the table is rebuilt in
batch mode, which drops migration 0002's triggers on it: they are created again here, exactly as
0002 made them (the FTS table `messages_fts` keeps its rows: ids are copied unchanged, and
`channels.message_count` is untouched because the copy runs before the triggers exist).
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_domain'
down_revision = '0002'
branch_labels = None
depends_on = None


SQLITE_TRIGGERS = [
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
]
PARTIAL = sa.text("edited_by IS NOT NULL")


def _sqlite_rebuild(change) -> None:
    """Rebuild `messages` with `change(batch_op)`, keeping AUTOINCREMENT and its counter (ids of
    deleted messages are never given again) and 0002's triggers."""
    bind = op.get_bind()
    seq = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")).scalar()
    with op.batch_alter_table('messages', recreate='always',
                              table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        change(batch_op)
    if seq is not None:
        bind.execute(sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'messages' AND seq < :seq"),
                     {"seq": seq})
        if bind.execute(sa.text("SELECT count(*) FROM sqlite_sequence WHERE name = 'messages'")).scalar() == 0:
            bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', :seq)"), {"seq": seq})
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def _add(batch_op) -> None:
    batch_op.add_column(sa.Column('edited_by', sa.Integer(), nullable=True))
    batch_op.create_foreign_key('fk_messages_edited_by_users', 'users', ['edited_by'], ['id'], ondelete='SET NULL')


def _drop(batch_op) -> None:
    batch_op.drop_constraint('fk_messages_edited_by_users', type_='foreignkey')
    batch_op.drop_column('edited_by')


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(_add)
    else:
        op.add_column('messages', sa.Column('edited_by', sa.Integer(), nullable=True))
        op.create_foreign_key('messages_edited_by_fkey', 'messages', 'users', ['edited_by'], ['id'],
                              ondelete='SET NULL')
    op.create_index('ix_messages_edited_by', 'messages', ['edited_by'], unique=False,
                    postgresql_where=PARTIAL, sqlite_where=PARTIAL)


def downgrade() -> None:
    op.drop_index('ix_messages_edited_by', table_name='messages')
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(_drop)
    else:
        op.drop_constraint('messages_edited_by_fkey', 'messages', type_='foreignkey')
        op.drop_column('messages', 'edited_by')
