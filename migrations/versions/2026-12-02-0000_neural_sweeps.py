"""neural sweeps: per-trial sample scores (and by training step), chunk progress, sweep figures (spec section 14)

Revision ID: 3f7a1c9e5b20
Revises: 9d2e5a7b3c41
Create Date: 2026-12-02 00:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '3f7a1c9e5b20'
down_revision = '9d2e5a7b3c41'
branch_labels = None
depends_on = None

_SCORES = ('memorised_fraction', 'generalisation_score', 'on_support_fraction')


def upgrade() -> None:
    # Nullable columns added in place (no table rebuild on SQLite, so no cascades fire).
    for name in _SCORES:
        op.add_column('sweep_trials', sa.Column(name, sa.Float(), nullable=True))
    json = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
    op.add_column('sweep_trials', sa.Column('scores_by_step', json, nullable=True))
    op.add_column('sweep_chunks', sa.Column('progress', json, nullable=True))
    op.create_table(
        'sweep_figures',
        sa.Column('sweep_id', sa.Uuid(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('n_components', sa.Integer(), nullable=False),
        sa.Column('ambient_dim', sa.Integer(), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('png', sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_sweep_figures_sweep_id_sweeps'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sweep_id', 'kind', 'n_components', 'ambient_dim', name=op.f('pk_sweep_figures')),
    )


def downgrade() -> None:
    op.drop_table('sweep_figures')
    with op.batch_alter_table('sweep_chunks') as batch:
        batch.drop_column('progress')
    with op.batch_alter_table('sweep_trials') as batch:
        for name in (*_SCORES, 'scores_by_step'):
            batch.drop_column(name)
