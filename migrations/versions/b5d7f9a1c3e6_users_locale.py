"""users.locale: the language a staff member uses the service in, for their emails

Revision ID: b5d7f9a1c3e6
Revises: a3c5e7f9b2d4
Create Date: 2026-12-05 04:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b5d7f9a1c3e6'
down_revision = 'a3c5e7f9b2d4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('locale')
