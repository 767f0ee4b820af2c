"""erased_addresses: a person erased at their request is not imported again

Revision ID: 5d8b2e6f4a91
Revises: 3c5e9a1f7d20
Create Date: 2026-12-02 05:40:00

"""
import sqlalchemy as sa
from alembic import op

from survey.core.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '5d8b2e6f4a91'
down_revision = '3c5e9a1f7d20'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'erased_addresses',
        sa.Column('address_hash', sa.String(length=64), nullable=False),
        sa.Column('erased_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('address_hash', name=op.f('pk_erased_addresses')),
    )


def downgrade():
    op.drop_table('erased_addresses')
