"""tickets applies every order event idempotently by itself (a ticket already held by the order,
already released for it or already sold is left as it is), in batches without an event-id record:
drop its processed_events table

Revision ID: d7b3e9a1c254
Revises: c4a8e2f0b713
Create Date: 2026-12-01 14:50:00.000000
"""
from alembic import op
import sqlalchemy as sa
import services.common.store


revision = 'd7b3e9a1c254'
down_revision = 'c4a8e2f0b713'
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
