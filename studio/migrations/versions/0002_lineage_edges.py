"""Lineage edges: what every artefact was made from (studio.lineage).

One ``edge`` row per "src was made from dst"; indexed both ways so that ``studio where``
walks up from a thing and ``studio lineage`` walks down from a deliverable.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('edge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('src_kind', sa.String(), nullable=False),
    sa.Column('src_id', sa.String(), nullable=False),
    sa.Column('dst_kind', sa.String(), nullable=False),
    sa.Column('dst_id', sa.String(), nullable=False),
    sa.Column('role', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('edge', schema=None) as batch_op:
        batch_op.create_index('ix_edge_dst', ['dst_kind', 'dst_id'], unique=False)
        batch_op.create_index('ix_edge_src', ['src_kind', 'src_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_edge_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('edge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_edge_run_id'))
        batch_op.drop_index('ix_edge_src')
        batch_op.drop_index('ix_edge_dst')

    op.drop_table('edge')
