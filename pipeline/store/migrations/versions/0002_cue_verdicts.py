"""cue verdicts: managers' right/wrong marks on stored cues and lines the rules missed

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import pipeline.store


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'cue_verdicts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('cue_id', sa.Integer(), nullable=True),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.Column('verdict', sa.String(length=10), nullable=False),
        sa.Column('label', sa.String(length=60), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('context', sa.Text(), nullable=True),
        sa.Column('lang', sa.String(length=10), nullable=False),
        sa.Column('reviewer', sa.String(length=200), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', pipeline.store.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['cue_id'], ['cues.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('cue_id'),
    )
    op.create_index(op.f('ix_cue_verdicts_call_id'), 'cue_verdicts', ['call_id'], unique=False)
    op.create_index(op.f('ix_cue_verdicts_label'), 'cue_verdicts', ['label'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_cue_verdicts_label'), table_name='cue_verdicts')
    op.drop_index(op.f('ix_cue_verdicts_call_id'), table_name='cue_verdicts')
    op.drop_table('cue_verdicts')
