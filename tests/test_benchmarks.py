"""Every benchmark script imports: they run outside CI (minutes to an hour each), so a rename in a module they
share would otherwise surface only when someone next measures (step_ab.py imported two functions scale.py no
longer had)."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports_and_a_command_has_its_main(name):
    module = importlib.import_module(f"benchmarks.{name}")
    source = (BENCHMARKS / f"{name}.py").read_text()
    if 'if __name__ == "__main__":' in source:
        assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py runs main(), which it lacks"
