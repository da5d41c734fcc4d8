"""charge attempts keep the description they were sent with (a replay must send identical parameters)

Revision ID: 6c1e0f3a9b2d
Revises: 2338f9f791b1
Create Date: 2026-12-02 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '6c1e0f3a9b2d'
down_revision = '2338f9f791b1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.String(length=500), nullable=True))
        batch_op.create_index('ix_charge_attempts_state_created_at', ['state', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_charge_attempts_state_created_at')
        batch_op.drop_column('description')
