"""operations platform: signed releases, rollouts and shipped logs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 21:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('releases',
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('test_record', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('signature', sa.String(length=200), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('version')
    )
    op.create_table('release_artifacts',
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['version'], ['releases.version'], ),
    sa.PrimaryKeyConstraint('version')
    )
    op.create_table('rollouts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('previous_version', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['version'], ['releases.version'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.create_index('ix_rollouts_state', ['state'], unique=False)

    op.create_table('rollout_phases',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('device_ids', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('baseline', sa.JSON(), nullable=False),
    sa.Column('verdict', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rollout_id', 'position', name='uq_rollout_phase_position')
    )
    with op.batch_alter_table('rollout_phases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollout_phases_rollout_id'), ['rollout_id'], unique=False)

    op.create_table('device_release_targets',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=True),
    sa.Column('health_deadline_seconds', sa.Integer(), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], ),
    sa.PrimaryKeyConstraint('device_id')
    )
    op.create_table('device_release_reports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('device_release_reports', schema=None) as batch_op:
        batch_op.create_index('ix_device_release_reports_device', ['device_id', 'id'], unique=False)

    op.create_table('device_log_batches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'batch_id', name='uq_device_log_batch')
    )
    with op.batch_alter_table('device_log_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_log_batches_received_at'), ['received_at'], unique=False)

    op.create_table('device_log_lines',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('event', sa.String(length=120), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('device_log_lines', schema=None) as batch_op:
        batch_op.create_index('ix_device_log_lines_at', ['at'], unique=False)
        batch_op.create_index('ix_device_log_lines_device_at', ['device_id', 'at'], unique=False)
        batch_op.create_index('ix_device_log_lines_session', ['session_id'], unique=False)

    op.create_table('major_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('major_events')
    with op.batch_alter_table('device_log_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_device_log_lines_session')
        batch_op.drop_index('ix_device_log_lines_device_at')
        batch_op.drop_index('ix_device_log_lines_at')
    op.drop_table('device_log_lines')
    with op.batch_alter_table('device_log_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_log_batches_received_at'))
    op.drop_table('device_log_batches')
    with op.batch_alter_table('device_release_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_device_release_reports_device')
    op.drop_table('device_release_reports')
    op.drop_table('device_release_targets')
    with op.batch_alter_table('rollout_phases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollout_phases_rollout_id'))
    op.drop_table('rollout_phases')
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_index('ix_rollouts_state')
    op.drop_table('rollouts')
    op.drop_table('release_artifacts')
    op.drop_table('releases')
