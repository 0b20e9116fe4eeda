"""check-in and waiting queues

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 21:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('queue_departments',
    sa.Column('department_code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('zone', sa.String(length=100), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=60), nullable=False),
    sa.PrimaryKeyConstraint('department_code')
    )
    op.create_table('queue_heads',
    sa.Column('department_code', sa.String(length=40), nullable=False),
    sa.Column('queue_date', sa.Date(), nullable=False),
    sa.Column('next_no', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('department_code', 'queue_date')
    )
    op.create_table('queue_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('department_code', sa.String(length=40), nullable=False),
    sa.Column('department_name', sa.String(length=100), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('queue_date', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('his_patient_id', sa.String(length=40), nullable=False),
    sa.Column('masked_name', sa.String(length=20), nullable=False),
    sa.Column('queue_no', sa.String(length=20), nullable=False),
    sa.Column('half_day', sa.String(length=2), nullable=False),
    sa.Column('slot_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('slot_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('doctor_code', sa.String(length=40), nullable=True),
    sa.Column('doctor_name', sa.String(length=50), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('age', sa.Integer(), nullable=True),
    sa.Column('checked_in_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rejoin_kind', sa.String(length=12), nullable=True),
    sa.Column('rejoin_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rejoin_behind', sa.Integer(), nullable=True),
    sa.Column('missed_count', sa.Integer(), nullable=False),
    sa.Column('call_count', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=40), nullable=True),
    sa.Column('called_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('called_by', sa.String(length=60), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('device_id', sa.String(length=32), nullable=True),
    sa.Column('his_state', sa.String(length=12), nullable=False),
    sa.Column('his_attempts', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'reference', name='uq_queue_entry_source')
    )
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.create_index('ix_queue_entries_queue', ['department_code', 'queue_date', 'state'], unique=False)
        batch_op.create_index('ix_queue_entries_his_state', ['his_state'], unique=False)

    op.create_table('queue_calls',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('department_code', sa.String(length=40), nullable=False),
    sa.Column('queue_date', sa.Date(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('queue_no', sa.String(length=20), nullable=False),
    sa.Column('masked_name', sa.String(length=20), nullable=False),
    sa.Column('room', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('text', sa.String(length=200), nullable=False),
    sa.Column('called_by', sa.String(length=60), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['queue_entries.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('queue_calls', schema=None) as batch_op:
        batch_op.create_index('ix_queue_calls_department', ['department_code', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('queue_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_calls_department')
    op.drop_table('queue_calls')
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_entries_his_state')
        batch_op.drop_index('ix_queue_entries_queue')
    op.drop_table('queue_entries')
    op.drop_table('queue_heads')
    op.drop_table('queue_departments')
