"""experiments/gpu_suite.py's bookkeeping: a failing case is recorded and the suite goes on, a case without
time left is skipped with its reason, and the files are on disk after every case (a killed run keeps them)."""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import gpu_suite  # noqa: E402


def test_suite_records_failures_and_skips_and_writes_after_each_case(tmp_path):
    suite = gpu_suite.Suite(tmp_path, budget=60.0, smoke=True)
    far = time.perf_counter() + 60.0

    def fails():
        raise ValueError("no such grid")

    suite.case("spinodal", "broken", far, 1.0, fails)
    first = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert "no such grid" in first["items"]["spinodal"]["cases"][0]["error"]

    ran = []
    suite.case("spinodal", "late", time.perf_counter() + 1.0, 5.0, lambda: ran.append(1))
    suite.case("spinodal", "fine", far, 1.0, lambda: suite.add("spinodal", "fine", "ok", {"cu_per_s": 1.0}))
    assert not ran
    cases = json.loads((tmp_path / "gpu_suite.json").read_text())["items"]["spinodal"]["cases"]
    assert [c["result"].split(":")[0] for c in cases] == ["FAILED", "skipped", "ok"]
    table = (tmp_path / "gpu_suite.md").read_text()
    assert "| spinodal | late | skipped" in table and "| spinodal | fine | ok |" in table
