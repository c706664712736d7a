"""buckets and Space volumes

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('buckets',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('owner_id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=96), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('size_mb', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_index(op.f('ix_buckets_owner_id'), 'buckets', ['owner_id'], unique=False)
    op.create_table('space_volumes',
    sa.Column('space_id', sa.String(length=24), nullable=False),
    sa.Column('volumes', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('space_id')
    )


def downgrade() -> None:
    op.drop_table('space_volumes')
    op.drop_index(op.f('ix_buckets_owner_id'), table_name='buckets')
    op.drop_table('buckets')
