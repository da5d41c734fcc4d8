"""payments applies order:cancelled idempotently by itself (the cancellation is recorded once), in
batches without an event-id record: drop its processed_events table

Revision ID: e2c8a4f6b137
Revises: 9d3f5a7c2e61
Create Date: 2026-12-01 14:50:00.000000
"""
from alembic import op
import sqlalchemy as sa
import services.common.store


revision = 'e2c8a4f6b137'
down_revision = '9d3f5a7c2e61'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('processed_events')


def downgrade() -> None:
    op.create_table('processed_events',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('processed_at', services.common.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', 'consumer')
    )
