"""audit_reasons: what a person wrote about a claim is kept apart from its event (which
hashes it), so that erasing the person deletes it without breaking the chain

Revision ID: a3c5e7f9b2d4
Revises: f2a6c8e4d1b9
Create Date: 2026-12-05 03:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a3c5e7f9b2d4'
down_revision = 'f2a6c8e4d1b9'
branch_labels = None
depends_on = None


def upgrade():
    big = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.add_column(sa.Column('reason_hash', sa.String(length=64), nullable=True))
    op.create_table(
        'audit_reasons',
        sa.Column('event_id', big, autoincrement=False, nullable=False),
        sa.Column('salt', sa.String(length=32), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['audit_events.id'], name=op.f('fk_audit_reasons_event_id_audit_events')),
        sa.PrimaryKeyConstraint('event_id', name=op.f('pk_audit_reasons')),
    )
    # A kept reason may be deleted (erasure), never rewritten; verification would see it
    # anyway (the text no longer matches its hash), the database refuses it first.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION audit_reasons_never_rewritten() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit reasons are never rewritten (only erased)';
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER audit_reasons_never_rewritten BEFORE UPDATE ON audit_reasons
                FOR EACH ROW EXECUTE FUNCTION audit_reasons_never_rewritten();
        """)


def downgrade():
    # Events with a reason kept apart were hashed with its hash: without the column the
    # chain would no longer verify, and the texts would be lost.
    if op.get_bind().execute(sa.text("SELECT 1 FROM audit_events WHERE reason_hash IS NOT NULL LIMIT 1")).first():
        raise RuntimeError("audit events hash reasons kept apart in audit_reasons: downgrading below "
                           "a3c5e7f9b2d4 would break the audit chain")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_reasons_never_rewritten ON audit_reasons;"
                   " DROP FUNCTION audit_reasons_never_rewritten();")
    op.drop_table('audit_reasons')
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.drop_column('reason_hash')
