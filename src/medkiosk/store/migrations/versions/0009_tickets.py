"""operations platform: tickets, inspections and consumables

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 21:40:00
"""

from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

# The default consumables (domain/consumables.py DEFAULT_ITEMS), with no stock yet.
ITEMS = [
    ("receipt_paper", "凭条打印纸", "卷", "receipt_printer", 250, 1.0, 20),
    ("a4_paper", "A4 打印纸", "包", "a4_printer", 500, 0.2, 5),
    ("toner", "硒鼓/碳粉", "个", "a4_printer", 3000, 0.2, 2),
    ("ribbon", "色带", "卷", "receipt_printer", 1500, 0.0, 2),
]


def upgrade() -> None:
    op.create_table('ops_tickets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=64), nullable=True),
    sa.Column('priority', sa.String(length=4), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('assignee', sa.String(length=60), nullable=True),
    sa.Column('own_target_seconds', sa.Integer(), nullable=False),
    sa.Column('resolve_target_seconds', sa.Integer(), nullable=False),
    sa.Column('own_level', sa.String(length=10), nullable=False),
    sa.Column('resolve_level', sa.String(length=10), nullable=False),
    sa.Column('transitions', sa.JSON(), nullable=False),
    sa.Column('cause', sa.Text(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('parts', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'source_ref', name='uq_ops_tickets_source')
    )
    op.create_index('ix_ops_tickets_state', 'ops_tickets', ['state'])
    op.create_index('ix_ops_tickets_device_id', 'ops_tickets', ['device_id'])
    op.create_table('ops_inspection_slots',
    sa.Column('at', sa.String(length=5), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('at')
    )
    op.create_table('ops_inspection_rounds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('slot_at', TS, nullable=False),
    sa.Column('opened_at', TS, nullable=False),
    sa.Column('opened_by', sa.String(length=60), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('signed_off_at', TS, nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slot_at')
    )
    op.create_table('ops_inspection_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('device_name', sa.String(length=100), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('verdict', sa.String(length=10), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('signed_by', sa.String(length=60), nullable=True),
    sa.Column('signed_at', TS, nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['ops_inspection_rounds.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'device_id', name='uq_ops_inspection_items_device')
    )
    op.create_index('ix_ops_inspection_items_round_id', 'ops_inspection_items', ['round_id'])
    op.create_index('ix_ops_inspection_items_device_id', 'ops_inspection_items', ['device_id'])
    items = op.create_table('ops_consumables',
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('unit', sa.String(length=8), nullable=False),
    sa.Column('printer', sa.String(length=20), nullable=False),
    sa.Column('prints_per_unit', sa.Integer(), nullable=False),
    sa.Column('prints_per_transaction', sa.Float(), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=False),
    sa.Column('low_stock', sa.Integer(), nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('ops_consumable_movements',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('item_code', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('stock_after', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('by', sa.String(length=60), nullable=False),
    sa.Column('at', TS, nullable=False),
    sa.ForeignKeyConstraint(['item_code'], ['ops_consumables.code']),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_ops_consumable_movements_device', 'ops_consumable_movements',
                    ['device_id', 'item_code', 'at'])
    now = datetime.now(timezone.utc)
    op.bulk_insert(items, [{"code": code, "name": name, "unit": unit, "printer": printer, "prints_per_unit": per_unit,
                            "prints_per_transaction": per_tx, "stock": 0, "low_stock": low, "updated_at": now}
                           for code, name, unit, printer, per_unit, per_tx, low in ITEMS])


def downgrade() -> None:
    op.drop_index('ix_ops_consumable_movements_device', table_name='ops_consumable_movements')
    op.drop_table('ops_consumable_movements')
    op.drop_table('ops_consumables')
    op.drop_index('ix_ops_inspection_items_device_id', table_name='ops_inspection_items')
    op.drop_index('ix_ops_inspection_items_round_id', table_name='ops_inspection_items')
    op.drop_table('ops_inspection_items')
    op.drop_table('ops_inspection_rounds')
    op.drop_table('ops_inspection_slots')
    op.drop_index('ix_ops_tickets_device_id', table_name='ops_tickets')
    op.drop_index('ix_ops_tickets_state', table_name='ops_tickets')
    op.drop_table('ops_tickets')
