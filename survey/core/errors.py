"""Named errors that services raise; views and the API turn them into pages or JSON.

A message is written for people, marked with ``lazy_gettext`` where it is raised: it is
translated when it is read, so ``exc.message`` reads French on a French page and English in
the API; ``str(exc)`` is always the English text, for logs, tracebacks and the terminal.
"""
from survey.core.i18n import as_text, in_english


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status that fits it."""

    status = 400

    def __init__(self, message, **details):
        message = as_text(message)
        super().__init__(message)
        #: a ``LazyText`` (translated when read, escaped in templates) or a plain string
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return in_english(self.message)


class NotFound(ServiceError):
    status = 404


class PermissionDenied(ServiceError):
    """The acting user's role may not do this, whatever the view let through."""

    status = 403


class InvalidState(ServiceError):
    """The object is not in a state that allows the operation."""

    status = 409


class ValidationFailed(ServiceError):
    """The input was understood but is not acceptable."""

    status = 422
