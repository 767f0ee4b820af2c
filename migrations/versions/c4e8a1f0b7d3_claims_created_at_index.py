"""claims (created_at, id): the chair's and the auditor's list of every claim, oldest
first, reads a page from the index instead of sorting every claim

Revision ID: c4e8a1f0b7d3
Revises: 9d3f6b2a8c41
Create Date: 2026-12-02 14:40:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c4e8a1f0b7d3'
down_revision = '9d3f6b2a8c41'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_claims_created_at_id', 'claims', ['created_at', 'id'])


def downgrade():
    op.drop_index('ix_claims_created_at_id', table_name='claims')
