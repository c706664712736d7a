"""runtime state builds usage quotas

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:49:01.695529
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quota_grants',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'key')
    )
    with op.batch_alter_table('quota_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quota_grants_account_id'), ['account_id'], unique=False)

    op.create_table('usage_intervals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('space_id', sa.String(length=24), nullable=False),
    sa.Column('flavor', sa.String(length=32), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('usage_intervals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_intervals_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_intervals_space_id'), ['space_id'], unique=False)

    op.create_table('builds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('space_id', sa.String(length=24), nullable=False),
    sa.Column('sha', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('artifact', sa.JSON(), nullable=True),
    sa.Column('factory', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_builds_space_id'), ['space_id'], unique=False)

    with op.batch_alter_table('spaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('instance', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('instance_sha', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('asleep', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('restarts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('spaces', schema=None) as batch_op:
        batch_op.drop_column('queued_at')
        batch_op.drop_column('retry_at')
        batch_op.drop_column('restarts')
        batch_op.drop_column('asleep')
        batch_op.drop_column('instance_sha')
        batch_op.drop_column('instance')
        batch_op.drop_column('artifact')

    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_builds_space_id'))

    op.drop_table('builds')
    with op.batch_alter_table('usage_intervals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_intervals_space_id'))
        batch_op.drop_index(batch_op.f('ix_usage_intervals_account_id'))

    op.drop_table('usage_intervals')
    with op.batch_alter_table('quota_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_grants_account_id'))

    op.drop_table('quota_grants')
