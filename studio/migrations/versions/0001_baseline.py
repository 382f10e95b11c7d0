"""Baseline: the schema the previous release (f8d95c3) made with SQLModel's create_all.

Written from autogenerate against that release's models, then reviewed by hand: plain
SQLAlchemy types (sqlmodel's AutoString is a String, its UTCDateTime a timezone-aware
DateTime) so the migration does not change when the models' library does. Constraint and
index names are the ones create_all gave (unnamed foreign keys and unique constraint,
``ix_<table>_<column>`` indexes), so a database the previous release made is stamped at
this revision as it is (see studio.db.init_db).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pointer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('scope', sa.String(), nullable=False),
    sa.Column('target_id', sa.String(), nullable=False),
    sa.Column('target_sha256', sa.String(), nullable=False),
    sa.Column('set_by', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pointer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pointer_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_pointer_scope'), ['scope'], unique=False)

    op.create_table('project',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_code'), ['code'], unique=True)

    op.create_table('promptrecord',
    sa.Column('hash', sa.String(), nullable=False),
    sa.Column('beat_id', sa.String(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_table('briefversion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('campaign', sa.String(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(), nullable=False),
    sa.Column('schema_name', sa.String(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('source_path', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'campaign', 'sha256')
    )
    with op.batch_alter_table('briefversion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_briefversion_campaign'), ['campaign'], unique=False)
        batch_op.create_index(batch_op.f('ix_briefversion_project_id'), ['project_id'], unique=False)

    op.create_table('run',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('brief_version_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('out_dir', sa.String(), nullable=False),
    sa.Column('code_version', sa.String(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['brief_version_id'], ['briefversion.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_brief_version_id'), ['brief_version_id'], unique=False)

    op.create_table('audioasset',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('beat_id', sa.String(), nullable=True),
    sa.Column('spec', sa.String(), nullable=True),
    sa.Column('sha256', sa.String(), nullable=True),
    sa.Column('start', sa.Float(), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('code_version', sa.String(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('rights', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audioasset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audioasset_beat_id'), ['beat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audioasset_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_audioasset_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audioasset_sha256'), ['sha256'], unique=False)

    op.create_table('shot',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('beat_id', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('duration', sa.Float(), nullable=False),
    sa.Column('rate', sa.String(), nullable=False),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('handles', sa.Integer(), nullable=False),
    sa.Column('focus_x', sa.Float(), nullable=False),
    sa.Column('focus_y', sa.Float(), nullable=False),
    sa.Column('prompt_hash', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['prompt_hash'], ['promptrecord.hash']),
    sa.ForeignKeyConstraint(['run_id'], ['run.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shot_beat_id'), ['beat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shot_run_id'), ['run_id'], unique=False)

    op.create_table('timeline',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.String(), nullable=True),
    sa.Column('sha256', sa.String(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('timeline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timeline_run_id'), ['run_id'], unique=False)

    op.create_table('candidate',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('shot_id', sa.String(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(), nullable=False),
    sa.Column('model_id', sa.String(), nullable=False),
    sa.Column('weights_sha256', sa.String(), nullable=True),
    sa.Column('steps', sa.Integer(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('prompt_hash', sa.String(), nullable=False),
    sa.Column('code_version', sa.String(), nullable=False),
    sa.Column('recipe_hash', sa.String(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('media_sha256', sa.String(), nullable=False),
    sa.Column('media_ext', sa.String(), nullable=False),
    sa.Column('depth_sha256', sa.String(), nullable=True),
    sa.Column('worker', sa.String(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('gpu_seconds', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['prompt_hash'], ['promptrecord.hash']),
    sa.ForeignKeyConstraint(['shot_id'], ['shot.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('candidate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_candidate_media_sha256'), ['media_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_candidate_prompt_hash'), ['prompt_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_candidate_recipe_hash'), ['recipe_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_candidate_shot_id'), ['shot_id'], unique=False)

    op.create_table('deliverable',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('timeline_id', sa.String(), nullable=True),
    sa.Column('spec', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('sha256', sa.String(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('fps', sa.String(), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('code_version', sa.String(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id']),
    sa.ForeignKeyConstraint(['timeline_id'], ['timeline.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deliverable', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliverable_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliverable_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliverable_spec'), ['spec'], unique=False)

    op.create_table('render',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('shot_id', sa.String(), nullable=False),
    sa.Column('candidate_id', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('media_sha256', sa.String(), nullable=False),
    sa.Column('media_ext', sa.String(), nullable=False),
    sa.Column('code_version', sa.String(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['candidate_id'], ['candidate.id']),
    sa.ForeignKeyConstraint(['run_id'], ['run.id']),
    sa.ForeignKeyConstraint(['shot_id'], ['shot.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('render', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_render_media_sha256'), ['media_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_render_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_render_shot_id'), ['shot_id'], unique=False)

    op.create_table('score',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('candidate_id', sa.String(), nullable=False),
    sa.Column('scorer', sa.String(), nullable=False),
    sa.Column('total', sa.Float(), nullable=False),
    sa.Column('components', sa.JSON(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['candidate_id'], ['candidate.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('score', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_score_candidate_id'), ['candidate_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('score', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_score_candidate_id'))

    op.drop_table('score')
    with op.batch_alter_table('render', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_render_shot_id'))
        batch_op.drop_index(batch_op.f('ix_render_run_id'))
        batch_op.drop_index(batch_op.f('ix_render_media_sha256'))

    op.drop_table('render')
    with op.batch_alter_table('deliverable', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliverable_spec'))
        batch_op.drop_index(batch_op.f('ix_deliverable_sha256'))
        batch_op.drop_index(batch_op.f('ix_deliverable_run_id'))

    op.drop_table('deliverable')
    with op.batch_alter_table('candidate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_candidate_shot_id'))
        batch_op.drop_index(batch_op.f('ix_candidate_recipe_hash'))
        batch_op.drop_index(batch_op.f('ix_candidate_prompt_hash'))
        batch_op.drop_index(batch_op.f('ix_candidate_media_sha256'))

    op.drop_table('candidate')
    with op.batch_alter_table('timeline', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timeline_run_id'))

    op.drop_table('timeline')
    with op.batch_alter_table('shot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shot_run_id'))
        batch_op.drop_index(batch_op.f('ix_shot_beat_id'))

    op.drop_table('shot')
    with op.batch_alter_table('audioasset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audioasset_sha256'))
        batch_op.drop_index(batch_op.f('ix_audioasset_run_id'))
        batch_op.drop_index(batch_op.f('ix_audioasset_kind'))
        batch_op.drop_index(batch_op.f('ix_audioasset_beat_id'))

    op.drop_table('audioasset')
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_brief_version_id'))

    op.drop_table('run')
    with op.batch_alter_table('briefversion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_briefversion_project_id'))
        batch_op.drop_index(batch_op.f('ix_briefversion_campaign'))

    op.drop_table('briefversion')
    op.drop_table('promptrecord')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_code'))

    op.drop_table('project')
    with op.batch_alter_table('pointer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pointer_scope'))
        batch_op.drop_index(batch_op.f('ix_pointer_name'))

    op.drop_table('pointer')
