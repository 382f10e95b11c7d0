"""Policy overrides: ``policy_override``, an approver's recorded sign-off that one policy rule
may be broken by one component in one brief or job (studio.policy).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('policy_override',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(), nullable=False),
    sa.Column('component', sa.String(), nullable=False),
    sa.Column('scope', sa.String(), nullable=False),
    sa.Column('approver', sa.String(), nullable=False),
    sa.Column('role', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('policy_override', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policy_override_scope'), ['scope'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('policy_override', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_policy_override_scope'))
    op.drop_table('policy_override')
