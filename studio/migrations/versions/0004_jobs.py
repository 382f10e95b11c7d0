"""The server's durable job queue (studio.jobs): ``job`` (a submitted brief and its queue
state), ``jobattempt`` (one worker's lease on it) and ``jobevent`` (append-only history,
the SSE stream's source).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('project', sa.String(), nullable=False),
    sa.Column('campaign', sa.String(), nullable=False),
    sa.Column('brief', sa.JSON(), nullable=False),
    sa.Column('brief_sha256', sa.String(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(), nullable=True),
    sa.Column('request_sha256', sa.String(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=True),
    sa.Column('out_dir', sa.String(), nullable=True),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_created', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_project'), ['project'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_state'), ['state'], unique=False)

    op.create_table('jobattempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('worker', sa.String(), nullable=False),
    sa.Column('lease_token', sa.String(), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['job.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('lease_token')
    )
    with op.batch_alter_table('jobattempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobattempt_job_id'), ['job_id'], unique=False)

    op.create_table('jobevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobevent_job_id'), ['job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobevent_job_id'))

    op.drop_table('jobevent')
    with op.batch_alter_table('jobattempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobattempt_job_id'))

    op.drop_table('jobattempt')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_state'))
        batch_op.drop_index(batch_op.f('ix_job_project'))
        batch_op.drop_index('ix_job_created')

    op.drop_table('job')
