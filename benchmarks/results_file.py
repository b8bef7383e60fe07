"""Where a benchmark's figures go: one JSON file under benchmarks/results/, keys sorted, echoed to stdout."""
from __future__ import annotations

import json
from pathlib import Path


def write_result(out: Path, result: dict) -> None:
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text, end="")
