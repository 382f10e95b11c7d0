"""The rights ledger (studio.rights): ``licence`` (every licence a component carries, its
record, and its revocation) and ``deliverable_block`` (a deliverable that must not ship: a
licence it uses expired or was revoked, or a policy rule refused it).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('licence',
    sa.Column('licence_id', sa.String(), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(), nullable=True),
    sa.Column('revoked_reason', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('licence_id')
    )
    op.create_table('deliverable_block',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deliverable_id', sa.String(), nullable=False),
    sa.Column('licence_id', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deliverable_id'], ['deliverable.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('deliverable_id', 'licence_id', 'reason')
    )
    with op.batch_alter_table('deliverable_block', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliverable_block_deliverable_id'), ['deliverable_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliverable_block_licence_id'), ['licence_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deliverable_block', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliverable_block_licence_id'))
        batch_op.drop_index(batch_op.f('ix_deliverable_block_deliverable_id'))
    op.drop_table('deliverable_block')
    op.drop_table('licence')
