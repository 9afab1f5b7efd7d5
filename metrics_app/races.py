"""What a metrics writer may simply try again: another process won a race for the same rows.

Writers merge into shared rows (rollups, daily spend) inside a savepoint: an insert that
loses to another process's insert of the same row is an IntegrityError, and two writers
inserting new rows of the same minute in different orders can each wait for the other's
uncommitted row, which PostgreSQL ends as a deadlock (40P01) in one of them. Either way the
savepoint is rolled back (its locks with it) and the merge tried again sees the other's rows.
"""

from __future__ import annotations

from django.db import IntegrityError, OperationalError

ATTEMPTS = 5


def lost_race(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) == "40P01"
