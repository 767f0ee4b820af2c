"""responses.retention_level: the daily purge reads only answers it has not stripped yet

Revision ID: 7a4c1e9b3d52
Revises: 5d8b2e6f4a91
Create Date: 2026-12-02 07:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '7a4c1e9b3d52'
down_revision = '5d8b2e6f4a91'
branch_labels = None
depends_on = None


def upgrade():
    # Answers already there start at 0: the next purge looks at each of them once.
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_level', sa.SmallInteger(), server_default='0', nullable=False))
        batch_op.create_index('ix_responses_retention', ['retention_level', 'submitted_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_index('ix_responses_retention')
        batch_op.drop_column('retention_level')
