"""the kiosks' bank POS settlement batches, for the daily reconciliation of card payments

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 01:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pos_settlement_batches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('terminal_id', sa.String(length=32), nullable=False),
    sa.Column('batch_no', sa.String(length=20), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('sale_count', sa.Integer(), nullable=False),
    sa.Column('sale_amount', sa.BigInteger(), nullable=False),
    sa.Column('void_count', sa.Integer(), nullable=False),
    sa.Column('void_amount', sa.BigInteger(), nullable=False),
    sa.Column('refund_count', sa.Integer(), nullable=False),
    sa.Column('refund_amount', sa.BigInteger(), nullable=False),
    sa.Column('net_amount', sa.BigInteger(), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'terminal_id', 'batch_no', 'settled_at', name='uq_pos_settlement_batch')
    )
    with op.batch_alter_table('pos_settlement_batches', schema=None) as batch_op:
        batch_op.create_index('ix_pos_settlement_batches_day', ['business_date', 'device_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pos_settlement_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_pos_settlement_batches_day')
    op.drop_table('pos_settlement_batches')
