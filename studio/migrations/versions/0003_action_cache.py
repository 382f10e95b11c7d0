"""The action cache (studio.cache): one ``action`` row per (stage, code version, inputs)
key, pointing at what it made in the store, so a killed render resumes and an edited
brief re-generates only what changed.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('action',
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('stage', sa.String(), nullable=False),
    sa.Column('code_version', sa.String(), nullable=False),
    sa.Column('outputs', sa.JSON(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id']),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_stage'), ['stage'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_stage'))
        batch_op.drop_index(batch_op.f('ix_action_run_id'))

    op.drop_table('action')
