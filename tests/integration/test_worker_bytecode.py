"""The outreach worker caches its workflows' bytecode: the sandbox re-imports a workflow's
module for every new workflow instance, and compiling it from source each time was a
measured share of the worker's CPU."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from workers.outreach import WORKFLOWS, cache_workflow_bytecode
from workflows.outreach import OutreachWorkflow


def test_missing_workflow_bytecode_is_written_once() -> None:
    source = Path(inspect.getfile(OutreachWorkflow))
    cached = Path(importlib.util.cache_from_source(str(source)))
    cached.unlink(missing_ok=True)

    assert "workflows.outreach" in cache_workflow_bytecode()
    assert cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime
    assert cache_workflow_bytecode() == []
    assert all(
        Path(importlib.util.cache_from_source(inspect.getfile(w))).exists() for w in WORKFLOWS
    )
