"""build queue shared by builder processes: worker, lease, attempts; one running build per Space

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

ONE_RUNNING = "status = 'running'"


def upgrade() -> None:
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('worker', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
    # The previous release re-queued every running build at start; the new one waits for a lease that those rows
    # lack. Queue them now, which also clears the way for the one-running-build-per-Space index.
    op.execute(sa.text("UPDATE builds SET status = 'queued' WHERE status = 'running'"))
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_builds_status'), ['status'], unique=False)
        batch_op.create_index('ux_builds_running_space', ['space_id'], unique=True,
                              sqlite_where=sa.text(ONE_RUNNING), postgresql_where=sa.text(ONE_RUNNING))


def downgrade() -> None:
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.drop_index('ux_builds_running_space')
        batch_op.drop_index(batch_op.f('ix_builds_status'))
        batch_op.drop_column('attempts')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('worker')
        batch_op.drop_column('started_at')
