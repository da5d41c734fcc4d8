"""throttle counters: sign-in failures become atomic counters with a progressive block

Revision ID: b7c1d2e3f4a5
Revises: a38778a0b0d4
"""
from alembic import op
import sqlalchemy as sa
import services.common.store


revision = 'b7c1d2e3f4a5'
down_revision = 'a38778a0b0d4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table('signin_failures', 'throttle_counters')
    with op.batch_alter_table('throttle_counters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blocked_until', services.common.store.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('throttle_counters', schema=None) as batch_op:
        batch_op.drop_column('blocked_until')
    op.rename_table('throttle_counters', 'signin_failures')
