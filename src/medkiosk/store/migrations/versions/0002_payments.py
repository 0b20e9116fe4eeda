"""payment orders and their journal (money columns hold whole fen)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:54:05.920464
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_orders',
    sa.Column('order_no', sa.String(length=32), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('his_patient_id', sa.String(length=40), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('visit_no', sa.String(length=40), nullable=False),
    sa.Column('his_order_nos', sa.JSON(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('pay_method', sa.String(length=16), nullable=True),
    sa.Column('his_total', sa.BigInteger(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=True),
    sa.Column('fund', sa.BigInteger(), nullable=True),
    sa.Column('account', sa.BigInteger(), nullable=True),
    sa.Column('cash', sa.BigInteger(), nullable=True),
    sa.Column('paid_amount', sa.BigInteger(), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('insurance_enc', sa.Text(), nullable=True),
    sa.Column('mdtrt_id', sa.String(length=40), nullable=True),
    sa.Column('chrg_bchno', sa.String(length=40), nullable=True),
    sa.Column('setl_id', sa.String(length=40), nullable=True),
    sa.Column('out_trade_no', sa.String(length=40), nullable=True),
    sa.Column('transaction_id', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('receipt_no', sa.String(length=40), nullable=True),
    sa.Column('invoice_no', sa.String(length=40), nullable=True),
    sa.Column('invoice_state', sa.String(length=12), nullable=False),
    sa.Column('anomaly', sa.String(length=40), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('pay_deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('order_no'),
    sa.UniqueConstraint('out_trade_no')
    )
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.create_index('ix_payment_orders_patient', ['patient_id', 'created_at'], unique=False)
        batch_op.create_index('ix_payment_orders_state_lease', ['state', 'lease_until'], unique=False)

    op.create_table('payment_steps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_no', sa.String(length=32), nullable=False),
    sa.Column('step', sa.String(length=30), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['order_no'], ['payment_orders.order_no'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('payment_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_steps_order_no'), ['order_no'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('payment_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_steps_order_no'))

    op.drop_table('payment_steps')
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_orders_state_lease')
        batch_op.drop_index('ix_payment_orders_patient')

    op.drop_table('payment_orders')
