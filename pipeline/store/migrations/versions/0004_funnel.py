"""funnel: opportunities with their stage history, and leads (`crm import --kind opportunities|leads`)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import pipeline.store


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'opportunities',
        sa.Column('id', sa.String(length=100), nullable=False),
        sa.Column('account_id', sa.String(length=100), nullable=False),
        sa.Column('rep_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=20), nullable=True),
        sa.Column('amount', sa.Float(), nullable=True),
        sa.Column('product', sa.String(length=200), nullable=True),
        sa.Column('lost_reason', sa.Text(), nullable=True),
        sa.Column('imported_at', pipeline.store.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['rep_id'], ['reps.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_opportunities_account_id'), 'opportunities', ['account_id'], unique=False)
    op.create_table(
        'opportunity_stages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('opportunity_id', sa.String(length=100), nullable=False),
        sa.Column('stage', sa.String(length=100), nullable=False),
        sa.Column('crm_stage', sa.String(length=200), nullable=False),
        sa.Column('entered_on', sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('opportunity_id', 'stage', 'entered_on'),
    )
    op.create_index(op.f('ix_opportunity_stages_opportunity_id'), 'opportunity_stages', ['opportunity_id'],
                    unique=False)
    op.create_table(
        'leads',
        sa.Column('id', sa.String(length=100), nullable=False),
        sa.Column('created_on', sa.Date(), nullable=False),
        sa.Column('rep_id', sa.Integer(), nullable=True),
        sa.Column('source', sa.String(length=200), nullable=True),
        sa.Column('converted_opportunity_id', sa.String(length=100), nullable=True),
        sa.Column('imported_at', pipeline.store.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['rep_id'], ['reps.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_leads_created_on'), 'leads', ['created_on'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_leads_created_on'), table_name='leads')
    op.drop_table('leads')
    op.drop_index(op.f('ix_opportunity_stages_opportunity_id'), table_name='opportunity_stages')
    op.drop_table('opportunity_stages')
    op.drop_index(op.f('ix_opportunities_account_id'), table_name='opportunities')
    op.drop_table('opportunities')
