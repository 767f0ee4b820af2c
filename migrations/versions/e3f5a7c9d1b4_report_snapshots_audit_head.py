"""report_snapshots.audit_head_id and audit_head_hash: the audit chain's head a publication
recorded, so the trail's page tells whether the trail still holds it

Revision ID: e3f5a7c9d1b4
Revises: d9e1a3c5f7b2
Create Date: 2026-12-05 05:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e3f5a7c9d1b4'
down_revision = 'd9e1a3c5f7b2'
branch_labels = None
depends_on = None


def upgrade():
    big = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    with op.batch_alter_table('report_snapshots') as batch_op:
        batch_op.add_column(sa.Column('audit_head_id', big, nullable=True))
        batch_op.add_column(sa.Column('audit_head_hash', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('report_snapshots') as batch_op:
        batch_op.drop_column('audit_head_hash')
        batch_op.drop_column('audit_head_id')
