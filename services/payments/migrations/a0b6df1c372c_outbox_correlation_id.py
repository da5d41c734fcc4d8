"""outbox rows keep the correlation id of what caused them (published with the event, also by the relay)

Revision ID: a0b6df1c372c
Revises: 6c1e0f3a9b2d
Create Date: 2026-12-01 10:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = 'a0b6df1c372c'
down_revision = '6c1e0f3a9b2d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('correlation_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('correlation_id')
