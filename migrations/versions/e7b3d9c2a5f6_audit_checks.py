"""audit_checks: whole-chain checks run by beat and the CLI, so the auditor's page
recomputes only the events after the last one

Revision ID: e7b3d9c2a5f6
Revises: c4e8a1f0b7d3
Create Date: 2026-12-02 14:50:00

"""
import sqlalchemy as sa
from alembic import op

import survey.core.types

# revision identifiers, used by Alembic.
revision = 'e7b3d9c2a5f6'
down_revision = 'c4e8a1f0b7d3'
branch_labels = None
depends_on = None


def upgrade():
    big = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    op.create_table(
        'audit_checks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_by', sa.String(length=40), nullable=False),
        sa.Column('started_at', survey.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', survey.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('ok', sa.Boolean(), nullable=True),
        sa.Column('checked', big, nullable=True),
        sa.Column('through_id', big, nullable=True),
        sa.Column('through_hash', sa.String(length=64), nullable=True),
        sa.Column('broken_id', big, nullable=True),
        sa.Column('problem', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checks')),
    )


def downgrade():
    op.drop_table('audit_checks')
