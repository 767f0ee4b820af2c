"""Privacy: what Attest keeps about a person, for how long, and how it lets go of it.

- ``anonymity``: an anonymous campaign's answers are stored so that nothing (no link
  column, no time, not even the order or the transaction that wrote a row) ties an
  answer to the person who gave it.
- ``erasure``: ``flask --app wsgi people erase EMAIL`` removes a person's personal data
  and evidence, keeping the anonymised counts and the audit chain.
- ``export``: ``flask --app wsgi people export EMAIL``, the person's right of access.
- ``retention``: the retention policy per kind of data (RETENTION_* settings), enforced
  daily by Celery beat and by ``flask --app wsgi people purge``.
"""
