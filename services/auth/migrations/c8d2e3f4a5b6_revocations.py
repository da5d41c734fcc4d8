"""revocations: signed-out sessions and revoked users, pulled by the gateways

Revision ID: c8d2e3f4a5b6
Revises: b7c1d2e3f4a5
"""
from alembic import op
import sqlalchemy as sa
import services.common.store


revision = 'c8d2e3f4a5b6'
down_revision = 'b7c1d2e3f4a5'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('revocations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('session_id', sa.String(length=32), nullable=True),
    sa.Column('not_before', services.common.store.UTCDateTime(), nullable=False),
    sa.Column('created_at', services.common.store.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revocations_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revocations_created_at'))
    op.drop_table('revocations')
