"""sessions: one row per login or registration, named by the token's `sid` claim

Revision ID: 0003_client
Revises: 0002
Create Date: 2026-11-28 20:30:00

A token works only while its session row exists; ending a session (logout, logout of the other
sessions, a password change for the others, block, deletion) deletes rows. Tokens issued before
this migration carry no session id and stop working (401): their holders sign in again.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_client'
down_revision = '0003_input'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'auth_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('user_agent', sa.String(length=512), nullable=True),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_auth_sessions_user_id', 'auth_sessions', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_auth_sessions_user_id', table_name='auth_sessions')
    op.drop_table('auth_sessions')
