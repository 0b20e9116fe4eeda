"""registrations made or picked up at kiosks: the HIS hold, the order paying its fee, the slip's facts

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 09:07:51
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kiosk_registrations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('registration_no', sa.String(length=40), nullable=True),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('his_patient_id', sa.String(length=40), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('schedule_id', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('half_day', sa.String(length=2), nullable=False),
    sa.Column('visit_no', sa.String(length=40), nullable=True),
    sa.Column('order_no', sa.String(length=40), nullable=True),
    sa.Column('fee', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('queue_no', sa.Integer(), nullable=True),
    sa.Column('hold_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('kiosk_registrations', schema=None) as batch_op:
        batch_op.create_index('ix_kiosk_registrations_patient_day', ['patient_id', 'day'], unique=False)
        batch_op.create_index('ix_kiosk_registrations_registration_no', ['registration_no'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kiosk_registrations', schema=None) as batch_op:
        batch_op.drop_index('ix_kiosk_registrations_registration_no')
        batch_op.drop_index('ix_kiosk_registrations_patient_day')
    op.drop_table('kiosk_registrations')
