"""URL converters shared by every blueprint."""
from __future__ import annotations

from werkzeug.routing import IntegerConverter

# Primary keys are 32-bit integers on every database we run on.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<int:…>`` bounded to the id column's range: a larger number is a 404
    like any unknown id, instead of overflowing the database driver."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002  (werkzeug's name)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
