"""Named errors that services raise; views and the API turn them into pages or JSON."""


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status that fits it."""

    status = 400

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


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
