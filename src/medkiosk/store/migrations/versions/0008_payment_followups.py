"""payment follow-ups: the insurance visit's fate and one order in flight per visit

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 21:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payment_orders') as batch:
        batch.add_column(sa.Column('visit_state', sa.String(length=12), nullable=False, server_default='none'))
        batch.add_column(sa.Column('active_key', sa.String(length=90), nullable=True))
        batch.create_unique_constraint('uq_payment_orders_active_key', ['active_key'])
        batch.create_index('ix_payment_orders_followups', ['visit_state', 'invoice_state'])


def downgrade() -> None:
    with op.batch_alter_table('payment_orders') as batch:
        batch.drop_index('ix_payment_orders_followups')
        batch.drop_constraint('uq_payment_orders_active_key', type_='unique')
        batch.drop_column('active_key')
        batch.drop_column('visit_state')
