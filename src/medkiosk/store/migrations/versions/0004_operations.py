"""operations platform: device ledger, telemetry, alerts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 21:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _buckets(name: str) -> None:
    op.create_table(name,
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('bucket', TS, nullable=False),
    sa.Column('beats', sa.Integer(), nullable=False),
    sa.Column('cpu_max', sa.Float(), nullable=True),
    sa.Column('memory_max', sa.Float(), nullable=True),
    sa.Column('disk_max', sa.Float(), nullable=True),
    sa.Column('transactions', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('peripheral_faults', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('device_id', 'bucket')
    )


def upgrade() -> None:
    op.create_table('ops_ledger',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('asset_no', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('terminal_type', sa.String(length=16), nullable=False),
    sa.Column('model', sa.String(length=60), nullable=False),
    sa.Column('vendor', sa.String(length=60), nullable=False),
    sa.Column('serial', sa.String(length=60), nullable=False),
    sa.Column('campus', sa.String(length=40), nullable=False),
    sa.Column('building', sa.String(length=40), nullable=False),
    sa.Column('floor', sa.String(length=20), nullable=False),
    sa.Column('area', sa.String(length=60), nullable=False),
    sa.Column('network', sa.JSON(), nullable=False),
    sa.Column('os', sa.String(length=60), nullable=False),
    sa.Column('software_version', sa.String(length=40), nullable=False),
    sa.Column('peripherals', sa.JSON(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('commissioning', sa.JSON(), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('device_id'),
    sa.UniqueConstraint('asset_no')
    )
    op.create_table('ops_device_telemetry',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('reported_at', TS, nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=True),
    sa.Column('memory_percent', sa.Float(), nullable=True),
    sa.Column('disk_percent', sa.Float(), nullable=True),
    sa.Column('transactions_total', sa.BigInteger(), nullable=False),
    sa.Column('failures_total', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('device_id')
    )
    _buckets('ops_telemetry_minutes')
    _buckets('ops_telemetry_hours')
    op.create_table('ops_upstream_health',
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('up', sa.Boolean(), nullable=False),
    sa.Column('checked_at', TS, nullable=False),
    sa.Column('since', TS, nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=200), nullable=False),
    sa.Column('checks', sa.BigInteger(), nullable=False),
    sa.Column('failures', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('ops_alerts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('open_key', sa.String(length=32), nullable=True),
    sa.Column('rule', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('active_since', TS, nullable=False),
    sa.Column('fired_at', TS, nullable=True),
    sa.Column('last_true_at', TS, nullable=False),
    sa.Column('resolved_at', TS, nullable=True),
    sa.Column('notified_state', sa.String(length=10), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=60), nullable=True),
    sa.Column('acknowledged_at', TS, nullable=True),
    sa.Column('assignee', sa.String(length=60), nullable=True),
    sa.Column('notes', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('open_key', name='uq_ops_alerts_open_key')
    )
    with op.batch_alter_table('ops_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_ops_alerts_fingerprint', ['fingerprint'], unique=False)
        batch_op.create_index('ix_ops_alerts_state', ['state', 'resolved_at'], unique=False)
    op.create_table('ops_alert_groups',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('first_seen_at', TS, nullable=False),
    sa.Column('last_notified_at', TS, nullable=True),
    sa.Column('sent', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('ops_silences',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('matchers', sa.JSON(), nullable=False),
    sa.Column('starts_at', TS, nullable=False),
    sa.Column('ends_at', TS, nullable=False),
    sa.Column('window', sa.JSON(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('expired_by', sa.String(length=60), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('ops_notify_channels',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('min_severity', sa.String(length=10), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('ops_notifications',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('group_key', sa.String(length=200), nullable=False),
    sa.Column('at', TS, nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('firing', sa.Integer(), nullable=False),
    sa.Column('resolved', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ops_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_ops_notifications_channel_id', ['channel_id'], unique=False)
        batch_op.create_index('ix_ops_notifications_at', ['at'], unique=False)


def downgrade() -> None:
    for name in ('ops_notifications', 'ops_notify_channels', 'ops_silences', 'ops_alert_groups', 'ops_alerts',
                 'ops_upstream_health', 'ops_telemetry_hours', 'ops_telemetry_minutes', 'ops_device_telemetry',
                 'ops_ledger'):
        op.drop_table(name)
