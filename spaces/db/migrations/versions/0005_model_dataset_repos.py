"""model and dataset repos; discussions and likes on them; webhooks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 11:05:00

Model and dataset repositories get a table of their own (``repos``): a Space row carries runtime state that a
model never has, and keeping them apart means no runtime loop can ever pick one up. Discussions and likes point at
a Space (``space_id``, now nullable) or at one of these (``repo_ref``); existing rows keep their ``space_id``.
Webhooks (``create_webhook``) watch repositories of every type.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('repos',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('repo_type', sa.String(length=8), nullable=False),
    sa.Column('owner_id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=96), nullable=False),
    sa.Column('repo_id', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('card_data', sa.JSON(), nullable=False),
    sa.Column('sha', sa.String(length=40), nullable=True),
    sa.Column('likes', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=24), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('repo_type', 'key')
    )
    with op.batch_alter_table('repos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_repos_owner_id'), ['owner_id'], unique=False)

    for table, other in (('discussions', 'num'), ('likes', 'user_id')):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('repo_ref', sa.String(length=24), nullable=True))
            batch_op.alter_column('space_id', existing_type=sa.String(length=24), nullable=True)
            batch_op.create_foreign_key(f'fk_{table}_repo_ref_repos', 'repos', ['repo_ref'], ['id'],
                                        ondelete='CASCADE')
            batch_op.create_unique_constraint(f'uq_{table}_repo_ref_{other}', ['repo_ref', other])
            batch_op.create_index(batch_op.f(f'ix_{table}_repo_ref'), ['repo_ref'], unique=False)

    op.create_table('webhooks',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('owner_id', sa.String(length=24), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('watched', sa.JSON(), nullable=False),
    sa.Column('domains', sa.JSON(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhooks_owner_id'), ['owner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhooks_owner_id'))
    op.drop_table('webhooks')
    for table, other in (('discussions', 'num'), ('likes', 'user_id')):
        op.execute(sa.text(f'DELETE FROM {table} WHERE repo_ref IS NOT NULL'))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_repo_ref'))
            batch_op.drop_constraint(f'uq_{table}_repo_ref_{other}', type_='unique')
            batch_op.drop_constraint(f'fk_{table}_repo_ref_repos', type_='foreignkey')
            batch_op.drop_column('repo_ref')
            batch_op.alter_column('space_id', existing_type=sa.String(length=24), nullable=False)
    with op.batch_alter_table('repos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_repos_owner_id'))
    op.drop_table('repos')
