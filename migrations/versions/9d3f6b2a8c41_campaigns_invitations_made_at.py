"""campaigns.invitations_made_at and invitations_lease_until: a large audience is invited
a chunk per transaction while the first emails go out, and resumed if its worker dies

Revision ID: 9d3f6b2a8c41
Revises: 7a4c1e9b3d52
Create Date: 2026-12-02 10:05:00

"""
import sqlalchemy as sa
from alembic import op

import survey.core.types

# revision identifiers, used by Alembic.
revision = '9d3f6b2a8c41'
down_revision = '7a4c1e9b3d52'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invitations_made_at', survey.core.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('invitations_lease_until', survey.core.types.UTCDateTime(timezone=True),
                                      nullable=True))
    # Campaigns started before made all their invitations in the starting transaction.
    op.execute("UPDATE campaigns SET invitations_made_at = sending_started_at "
               "WHERE sending_started_at IS NOT NULL")


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('invitations_lease_until')
        batch_op.drop_column('invitations_made_at')
