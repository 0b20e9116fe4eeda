"""the kiosk's department configuration: versions (draft, published), their departments, the head row

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 09:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    head = op.create_table('department_config_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('published_version', sa.Integer(), nullable=True),
    sa.Column('draft_version', sa.Integer(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    # The one row every change locks: there from the start, so no two workers race to create it.
    op.bulk_insert(head, [{'id': 1, 'published_version': None, 'draft_version': None, 'revision': 0,
                           'updated_at': None}])
    op.create_table('department_config_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('based_on', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('published_by', sa.String(length=60), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('department_config_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('group_name', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('his_codes', sa.JSON(), nullable=False),
    sa.Column('doctor_codes', sa.JSON(), nullable=True),
    sa.Column('intro', sa.Text(), nullable=False),
    sa.Column('location', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['department_config_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version_id', 'key', name='uq_department_config_entry_key')
    )
    with op.batch_alter_table('department_config_entries', schema=None) as batch_op:
        batch_op.create_index('ix_department_config_entries_version', ['version_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('department_config_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_department_config_entries_version')
    op.drop_table('department_config_entries')
    op.drop_table('department_config_versions')
    op.drop_table('department_config_head')
