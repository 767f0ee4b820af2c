"""reminders, opt-out and bounces: quiet hours, unsubscribe tokens, bounced emails

Revision ID: 108e6a1d8f59
Revises: 6e17702708db
Create Date: 2026-11-23 11:41:30.471663

"""
from alembic import op
import sqlalchemy as sa

import survey.core.types


# revision identifiers, used by Alembic.
revision = '108e6a1d8f59'
down_revision = '6e17702708db'
branch_labels = None
depends_on = None


OLD_OUTBOX_STATUSES = "status IN ('queued', 'sending', 'sent', 'failed', 'cancelled')"
NEW_OUTBOX_STATUSES = "status IN ('queued', 'sending', 'sent', 'failed', 'cancelled', 'bounced')"


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quiet_hours_start', sa.Time(), nullable=True))
        batch_op.add_column(sa.Column('quiet_hours_end', sa.Time(), nullable=True))
        batch_op.create_check_constraint(
            'quiet_hours_whole', '(quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)')

    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unsubscribe_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('opted_out_at', survey.core.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_invitations_next_reminder_at', ['next_reminder_at'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_invitations_unsubscribe_hash'), ['unsubscribe_hash'])

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounced_at', survey.core.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(batch_op.f('ck_outbox_messages_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', NEW_OUTBOX_STATUSES)


def downgrade():
    op.execute("UPDATE outbox_messages SET status = 'sent' WHERE status = 'bounced'")
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_outbox_messages_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', OLD_OUTBOX_STATUSES)
        batch_op.drop_column('bounced_at')

    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_invitations_unsubscribe_hash'), type_='unique')
        batch_op.drop_index('ix_invitations_next_reminder_at')
        batch_op.drop_column('opted_out_at')
        batch_op.drop_column('unsubscribe_hash')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_campaigns_quiet_hours_whole'), type_='check')
        batch_op.drop_column('quiet_hours_end')
        batch_op.drop_column('quiet_hours_start')

