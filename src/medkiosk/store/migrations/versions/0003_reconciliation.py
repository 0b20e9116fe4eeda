"""daily reconciliation of payments against the channel, HIS and insurance

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 21:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reconciliation_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('triggered_by', sa.String(length=80), nullable=False),
    sa.Column('schedule_key', sa.String(length=10), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.Column('discrepancy_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('schedule_key')
    )
    with op.batch_alter_table('reconciliation_runs', schema=None) as batch_op:
        batch_op.create_index('ix_reconciliation_runs_day', ['business_date'], unique=False)

    op.create_table('reconciliation_discrepancies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('order_no', sa.String(length=32), nullable=True),
    sa.Column('ours', sa.BigInteger(), nullable=True),
    sa.Column('theirs', sa.BigInteger(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('fix', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=60), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['reconciliation_runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reconciliation_discrepancies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliation_discrepancies_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reconciliation_discrepancies_reference'), ['reference'], unique=False)

    # A day of orders and of journal steps is read by time.
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.create_index('ix_payment_orders_created_at', ['created_at'], unique=False)
    with op.batch_alter_table('payment_steps', schema=None) as batch_op:
        batch_op.create_index('ix_payment_steps_step_started', ['step', 'started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payment_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_steps_step_started')
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_orders_created_at')
    with op.batch_alter_table('reconciliation_discrepancies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_discrepancies_reference'))
        batch_op.drop_index(batch_op.f('ix_reconciliation_discrepancies_run_id'))

    op.drop_table('reconciliation_discrepancies')
    with op.batch_alter_table('reconciliation_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_reconciliation_runs_day')

    op.drop_table('reconciliation_runs')
