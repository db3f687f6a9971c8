"""Until the southbound quota view is merged: no quota rows.

``monitor.alerting`` evaluates the quota alert over ``consumers.views.southbound_quota``
(the shared contract: ``list[QuotaView]``, SH then SZ), which the quota work adds to
consumers/views.py. On a branch without it, the service's alert evaluation would fail;
this stands in for it with "no quota published" and does nothing once the real one is
there. Delete this file after the merge.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consumers import views


@pytest.fixture(scope="session", autouse=True)
def _southbound_quota_until_merged() -> Iterator[None]:
    # session scope: module-scoped fixtures (a service answering /api/v1/status) run before function ones
    with pytest.MonkeyPatch.context() as mp:
        if not hasattr(views, "southbound_quota"):
            mp.setattr(views, "southbound_quota", lambda engine: [], raising=False)
        yield
