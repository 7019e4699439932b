"""jobs and users: the database-backed job queue of `churnwatch serve` and the people who may use it

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
import pipeline.store


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('password_hash', sa.String(length=300), nullable=True),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('rep_id', sa.Integer(), nullable=True),
        sa.Column('token_hash', sa.String(length=64), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', pipeline.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column('token_created_at', pipeline.store.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['rep_id'], ['reps.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('email'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_table(
        'jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('file_path', sa.Text(), nullable=False),
        sa.Column('original_name', sa.String(length=300), nullable=True),
        sa.Column('account_id', sa.String(length=100), nullable=True),
        sa.Column('rep', sa.String(length=200), nullable=True),
        sa.Column('call_date', sa.Date(), nullable=True),
        sa.Column('external_id', sa.String(length=200), nullable=True),
        sa.Column('participants', sa.JSON(), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(length=200), nullable=True),
        sa.Column('lease_until', pipeline.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', pipeline.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column('started_at', pipeline.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', pipeline.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', pipeline.store.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('external_id'),
    )
    op.create_index(op.f('ix_jobs_account_id'), 'jobs', ['account_id'], unique=False)
    op.create_index('ix_jobs_status_id', 'jobs', ['status', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_jobs_status_id', table_name='jobs')
    op.drop_index(op.f('ix_jobs_account_id'), table_name='jobs')
    op.drop_table('jobs')
    op.drop_table('users')
