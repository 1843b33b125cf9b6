"""seeds as BIGINT: models.seed and sample_sets.seed hold any seed the API accepts (0 .. 2^63-1)

Revision ID: 4b8e6f0c2a17
Revises: 7c3f2a91b0d4
Create Date: 2026-12-01 21:10:00
"""
from alembic import op
import sqlalchemy as sa

revision = '4b8e6f0c2a17'
down_revision = '7c3f2a91b0d4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite stores every INTEGER in up to 8 bytes already, and rebuilding the tables (batch mode) with
    # foreign keys on would cascade-delete rows that reference them: only PostgreSQL needs the change.
    if op.get_bind().dialect.name == 'sqlite':
        return
    for table in ('models', 'sample_sets'):
        with op.batch_alter_table(table) as batch:
            batch.alter_column('seed', existing_type=sa.Integer(), type_=sa.BigInteger(),
                               existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    for table in ('models', 'sample_sets'):
        with op.batch_alter_table(table) as batch:
            batch.alter_column('seed', existing_type=sa.BigInteger(), type_=sa.Integer(),
                               existing_nullable=False)
