"""pytest plugin for the mutation harness: run the checks a mutant's ``focus`` names
first (by matrix node, category or check module), then every other check.  It only
reorders: a mutant that survives has still run the whole suite."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    focus = {f for f in os.environ.get("MUTANT_FOCUS", "").split(",") if f}
    if not focus:
        return

    def first(item: pytest.Item) -> int:
        props = dict(item.user_properties)
        mod = os.path.splitext(os.path.basename(str(item.path)))[0].removeprefix("test_")
        keys = {props.get("procfs_node"), props.get("procfs_category"), mod}
        return 0 if keys & focus else 1

    items.sort(key=first)          # stable: the suite's own order inside each group
