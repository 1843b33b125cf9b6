"""models.weights_safetensors: a neural model's weights (safetensors bytes); NULL for low-rank models

Revision ID: 9d2e5a7b3c41
Revises: 4b8e6f0c2a17
Create Date: 2026-12-01 22:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '9d2e5a7b3c41'
down_revision = '4b8e6f0c2a17'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column added in place (no table rebuild on SQLite, so no cascades fire).
    op.add_column('models', sa.Column('weights_safetensors', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.drop_column('weights_safetensors')
