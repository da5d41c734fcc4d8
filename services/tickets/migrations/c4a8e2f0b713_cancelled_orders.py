"""tickets remember cancelled orders, so an order:created arriving after its order:cancelled reserves nothing

Revision ID: c4a8e2f0b713
Revises: 3c552a7d8466
Create Date: 2026-12-01 10:30:00.000000
"""
from alembic import op
import sqlalchemy as sa
import services.common.store


revision = 'c4a8e2f0b713'
down_revision = '3c552a7d8466'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cancelled_orders',
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('ticket_id', sa.String(length=32), nullable=False),
        sa.Column('cancelled_at', services.common.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('order_id'))


def downgrade() -> None:
    op.drop_table('cancelled_orders')
