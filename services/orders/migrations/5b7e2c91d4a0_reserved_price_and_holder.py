"""orders keep the price they were reserved at, and who holds them for payment

Revision ID: 5b7e2c91d4a0
Revises: b715f5d6b731
Create Date: 2026-12-01 10:15:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '5b7e2c91d4a0'
down_revision = 'b715f5d6b731'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('price_cents', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('held_by', sa.String(length=32), nullable=True))
    # orders reserved before this revision: the replica's price is the best record there is
    op.execute("UPDATE orders SET price_cents = (SELECT tickets.price_cents FROM tickets "
               "WHERE tickets.id = orders.ticket_id) WHERE price_cents IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('held_by')
        batch_op.drop_column('price_cents')
