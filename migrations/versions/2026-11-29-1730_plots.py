"""plots: worker-rendered PNG figures per (job, kind)

Revision ID: 7c3f2a91b0d4
Revises: e1a6bada5dc4
Create Date: 2026-11-29 17:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = '7c3f2a91b0d4'
down_revision = 'e1a6bada5dc4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('plots',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('png', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_plots_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'kind', name=op.f('pk_plots'))
    )


def downgrade() -> None:
    op.drop_table('plots')
