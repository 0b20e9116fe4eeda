"""exam appointments and document reprints

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 21:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exam_slots',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('resource_code', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('start', sa.Time(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('resource_code', 'day', 'start', name='uq_exam_slot')
    )
    op.create_table('exam_bookings',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('order_no', sa.String(length=40), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('his_patient_id', sa.String(length=40), nullable=False),
    sa.Column('exam_type', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('resource_code', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('start', sa.Time(), nullable=False),
    sa.Column('end', sa.Time(), nullable=False),
    sa.Column('moves', sa.Integer(), nullable=False),
    sa.Column('his_synced', sa.Boolean(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('order_no')
    )
    with op.batch_alter_table('exam_bookings', schema=None) as batch_op:
        batch_op.create_index('ix_exam_bookings_patient_state', ['patient_id', 'state'], unique=False)

    op.create_table('exam_booking_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('booking_id', sa.String(length=36), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['exam_bookings.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('exam_booking_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exam_booking_events_booking_id'), ['booking_id'], unique=False)

    op.create_table('document_prints',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('doc_key', sa.String(length=80), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('doc_no', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=60), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('copy', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('doc_key', 'seq', name='uq_document_print_seq')
    )
    with op.batch_alter_table('document_prints', schema=None) as batch_op:
        batch_op.create_index('ix_document_prints_patient', ['patient_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('document_prints', schema=None) as batch_op:
        batch_op.drop_index('ix_document_prints_patient')
    op.drop_table('document_prints')
    with op.batch_alter_table('exam_booking_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exam_booking_events_booking_id'))
    op.drop_table('exam_booking_events')
    with op.batch_alter_table('exam_bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_exam_bookings_patient_state')
    op.drop_table('exam_bookings')
    op.drop_table('exam_slots')
