"""outbox_messages (status, next_attempt_at, id): a sender takes the first due rows
in the index's order and stops after a batch, however many are queued

Revision ID: f2a6c8e4d1b9
Revises: e7b3d9c2a5f6
Create Date: 2026-12-02 16:50:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f2a6c8e4d1b9'
down_revision = 'e7b3d9c2a5f6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_outbox_messages_status_next_attempt_at_id', 'outbox_messages',
                    ['status', 'next_attempt_at', 'id'])
    op.drop_index('ix_outbox_messages_status_next_attempt_at', table_name='outbox_messages')


def downgrade():
    op.create_index('ix_outbox_messages_status_next_attempt_at', 'outbox_messages', ['status', 'next_attempt_at'])
    op.drop_index('ix_outbox_messages_status_next_attempt_at_id', table_name='outbox_messages')
