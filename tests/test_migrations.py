"""The schema comes from Alembic revisions only: upgrading from empty gives exactly
the models' tables, and every revision can be undone and redone."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from survey.extensions import db


def test_the_migrations_build_exactly_the_models_schema(app_ctx):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == [], "run `flask --app wsgi db migrate` and review the new revision"


def test_every_revision_can_be_undone_and_redone(app, tmp_path):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    from survey import create_app

    fresh = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"})
    try:
        with fresh.app_context():
            upgrade()
            assert "outbox_messages" in inspect(db.engine).get_table_names()
            downgrade(revision="base")
            assert inspect(db.engine).get_table_names() == ["alembic_version"]
            upgrade()
            assert "bounced_at" in {c["name"] for c in inspect(db.engine).get_columns("outbox_messages")}
            db.engine.dispose()
    finally:
        # A second app makes its Celery app the current one: the tasks later tests call would
        # run against this throwaway database (test_retention's did, when run after this).
        app.extensions["celery"].set_current()
        app.extensions["celery"].set_default()
