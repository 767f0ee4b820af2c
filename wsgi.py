"""WSGI entry point and the Celery application.

    flask --app wsgi run
    celery -A wsgi:celery_app worker
    celery -A wsgi:celery_app beat
"""
from survey import create_app

app = create_app()
celery_app = app.extensions["celery"]
