"""outbox rows keep the correlation id of what caused them (published with the event, also by the relay)

Revision ID: 3c552a7d8466
Revises: 3ff3a77f4645
Create Date: 2026-12-01 10:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '3c552a7d8466'
down_revision = '3ff3a77f4645'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('correlation_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('correlation_id')
