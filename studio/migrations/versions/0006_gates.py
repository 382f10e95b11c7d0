"""Human gates (studio.gates): ``decision`` (append-only picks, annotations, requests for
more candidates, approvals and rejections, each with the content hash it was made on), and
the job's ``gate`` (what it waits on) and ``steer`` (more candidates asked for per beat).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(), nullable=False),
    sa.Column('project', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('beat', sa.String(), nullable=True),
    sa.Column('candidate_id', sa.String(), nullable=True),
    sa.Column('role', sa.String(), nullable=True),
    sa.Column('codes', sa.JSON(), nullable=False),
    sa.Column('note', sa.String(), nullable=False),
    sa.Column('who', sa.String(), nullable=False),
    sa.Column('content_sha256', sa.String(), nullable=False),
    sa.Column('frame', sa.Integer(), nullable=True),
    sa.Column('fps', sa.String(), nullable=True),
    sa.Column('run_id', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decision_project'), ['project'], unique=False)
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gate', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('steer', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('steer')
        batch_op.drop_column('gate')
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_project'))
        batch_op.drop_index(batch_op.f('ix_decision_job_id'))
    op.drop_table('decision')
