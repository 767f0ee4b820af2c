"""The Celery application: background sending, polling for due work.

Tasks run inside a Flask application context. Due work lives in the database;
beat only polls for it (see ``workflows.tasks.tick``).
"""
from __future__ import annotations

from pathlib import Path

from celery import Celery, Task
from flask import Flask

import workflows.broker  # noqa: F401  (registers the embedded default's broker scheme)


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    options = app.config["CELERY"].get("broker_transport_options", {})
    for key in ("data_folder_in", "data_folder_out"):  # the filesystem broker needs its folder
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.conf.beat_schedule = {
        "tick": {"task": "workflows.tasks.tick", "schedule": app.config["BEAT_INTERVAL"]},
        "committee-reminders": {"task": "workflows.tasks.committee_reminders",
                                "schedule": app.config["COMMITTEE_REMINDER_INTERVAL"]},
        "retention": {"task": "workflows.tasks.apply_retention", "schedule": app.config["RETENTION_INTERVAL"]},
    }
    celery_app.set_default()
    app.extensions["celery"] = celery_app

    import workflows.tasks  # noqa: F401  (registers the shared tasks)

    return celery_app
