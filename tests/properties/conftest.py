"""Rule reach of the state machines, on request: which rules ran, and how often, and what they saw.

The short profiles of `make test` are kept short on purpose; this is how to check that they still
reach every rule (and the outcomes that matter: a rule that only ever reverts on a precondition
of the contract checks less than one that also succeeds). ``XCPAY_RULE_REACH=<file>`` counts,
for every machine of this package that runs, each rule's calls and each ``event()`` it records,
and writes them to ``<file>`` (JSON) at the end of the session, with the rules that never ran::

    XCPAY_RULE_REACH=/tmp/reach.json .venv/bin/python -m pytest -q tests/properties

Counting wraps each rule in a plain call counter; nothing else changes.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis.stateful import RuleBasedStateMachine

REACH_FILE = os.environ.get("XCPAY_RULE_REACH")
CALLS: dict[str, Counter[str]] = {}
EVENTS: dict[str, Counter[str]] = {}
# Per machine, per example (in the order they ran): the rules called, in order.
TRACES: dict[str, dict[int, list[str]]] = {}


def _count_rules(machine: type[RuleBasedStateMachine]) -> None:
    calls = CALLS.setdefault(machine.__qualname__, Counter())
    traces = TRACES.setdefault(machine.__qualname__, {})
    for rule in machine.setup_state().rules:
        name = rule.function.__name__
        calls[name] += 0

        def counted(*args: Any, _f: Callable[..., Any] = rule.function, _n: str = name, **kw: Any) -> Any:
            calls[_n] += 1
            example = vars(args[0]).setdefault("_reach_example", len(traces))
            traces.setdefault(example, []).append(_n)
            return _f(*args, **kw)

        rule.function = functools.wraps(rule.function)(counted)


def _count_events(module: Any, owner: str) -> None:
    original = getattr(module, "event", None)
    if original is None:
        return
    events = EVENTS.setdefault(owner, Counter())

    def counted(value: Any, payload: Any = "") -> None:
        events[str(value)] += 1
        original(value, payload)

    module.event = counted


def pytest_collection_finish(session: pytest.Session) -> None:
    if not REACH_FILE:
        return
    seen: set[type] = set()
    for item in session.items:
        module = sys.modules.get(getattr(item.module, "__name__", ""), None)
        if module is None or not module.__name__.startswith("tests.properties."):
            continue
        machines = [
            v
            for v in vars(module).values()
            if isinstance(v, type)
            and issubclass(v, RuleBasedStateMachine)
            and v.__module__ == module.__name__
        ]
        for machine in machines:
            if machine not in seen:
                seen.add(machine)
                _count_rules(machine)
                _count_events(module, machine.__qualname__)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not REACH_FILE or not CALLS:
        return
    report = {
        name: {
            "rules": dict(sorted(calls.items())),
            "never_ran": sorted(r for r, n in calls.items() if n == 0),
            "events": dict(sorted(EVENTS.get(name, Counter()).items())),
            "examples": list(TRACES.get(name, {}).values()),
        }
        for name, calls in CALLS.items()
    }
    Path(REACH_FILE).write_text(json.dumps(report, indent=1))
