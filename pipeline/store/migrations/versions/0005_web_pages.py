"""web pages: the audit trail, the rule files' history and each user's page language

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import pipeline.store


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', pipeline.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=320), nullable=True),
        sa.Column('action', sa.String(length=60), nullable=False),
        sa.Column('target', sa.String(length=300), nullable=True),
        sa.Column('client', sa.String(length=100), nullable=True),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_events_action_at', 'audit_events', ['action', 'at'], unique=False)
    op.create_table(
        'rule_file_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('path', sa.String(length=300), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('author', sa.String(length=320), nullable=True),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('created_at', pipeline.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('path', 'version'),
    )
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('lang', sa.String(length=10), nullable=False, server_default='en'))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('lang')
    op.drop_table('rule_file_versions')
    op.drop_index('ix_audit_events_action_at', table_name='audit_events')
    op.drop_table('audit_events')
