"""confirmation publishes no event and applies none through the processed-events record (one email
per order is keyed by the order id): drop its outbox and processed_events tables, never written

Revision ID: e5f1a7c3b902
Revises: 4ba6189f18bc
Create Date: 2026-12-01 13:30:00.000000
"""
from alembic import op
import sqlalchemy as sa
import services.common.store


revision = 'e5f1a7c3b902'
down_revision = '4ba6189f18bc'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('processed_events')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_created_at'))
    op.drop_table('outbox')


def downgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_name', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', services.common.store.UTCDateTime(timezone=True), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_created_at'), ['created_at'], unique=False)
    op.create_table('processed_events',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('processed_at', services.common.store.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', 'consumer')
    )
