"""api_keys.read_only: a key that reads questionnaires, audiences, campaigns and reports,
and changes nothing (a dashboard's)

Revision ID: d9e1a3c5f7b2
Revises: b5d7f9a1c3e6
Create Date: 2026-12-05 04:50:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd9e1a3c5f7b2'
down_revision = 'b5d7f9a1c3e6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.add_column(sa.Column('read_only', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.drop_column('read_only')
