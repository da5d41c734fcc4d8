"""outbox rows keep the correlation id of what caused them (published with the event, also by the relay)

Revision ID: b715f5d6b731
Revises: 18ee86ab474e
Create Date: 2026-12-01 10:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = 'b715f5d6b731'
down_revision = '18ee86ab474e'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('correlation_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('correlation_id')
