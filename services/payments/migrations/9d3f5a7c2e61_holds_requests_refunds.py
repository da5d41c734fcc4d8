"""attempts written before the hold (holding/dropped, nullable amount), request ids, hold releases; refunds

Revision ID: 9d3f5a7c2e61
Revises: a0b6df1c372c
Create Date: 2026-12-01 10:20:00.000000
"""
from alembic import op
import sqlalchemy as sa
import services.common.store


revision = '9d3f5a7c2e61'
down_revision = 'a0b6df1c372c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.alter_column('amount_cents', existing_type=sa.BigInteger(), nullable=True)
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('released_at', services.common.store.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index('ix_charge_attempts_request_id', ['request_id'], unique=False)
    # attempts settled before this revision had their holds released when they were recorded
    op.execute("UPDATE charge_attempts SET released_at = settled_at WHERE state IN ('declined', 'failed')")
    op.create_table('cancelled_orders',
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('cancelled_at', services.common.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('order_id'))
    op.create_table('refunds',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('payment_id', sa.String(length=32), nullable=False),
        sa.Column('charge_id', sa.String(length=255), nullable=False),
        sa.Column('refund_id', sa.String(length=255), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('created_at', services.common.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('order_id'),
        sa.UniqueConstraint('payment_id'))


def downgrade() -> None:
    op.drop_table('refunds')
    op.drop_table('cancelled_orders')
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_charge_attempts_request_id')
        batch_op.drop_column('released_at')
        batch_op.drop_column('request_id')
        batch_op.alter_column('amount_cents', existing_type=sa.BigInteger(), nullable=False)
