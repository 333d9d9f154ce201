"""How pytest-xdist hands out the tests (a plugin: tests/conftest.py loads it).

One test at a time to whichever worker is free (xdist's `load`), except the modules below, which
go whole to one worker because their tests share an expensive module fixture; they are handed out
first, being the longest. (xdist's own `loadgroup` does not group with pytest 9: it renames
items through an attribute pytest no longer reads.)"""

from __future__ import annotations

from typing import Any

import pytest

ONE_WORKER = {
    "tests/test_wheel_install.py": "builds the wheel, a venv from requirements.txt and the build tool once",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "load":
        return None  # an explicit --dist of another kind is xdist's
    from xdist.scheduler import LoadScopeScheduling

    class TestsButSomeModulesWhole(LoadScopeScheduling):
        # LoadScopeScheduling hands out "scopes" (largest first); here a scope is one test, or a
        # whole module of ONE_WORKER.
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER else nodeid

    return TestsButSomeModulesWhole(config, log)
