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


def test_hong2018_item_runs_and_resumes_in_smoke_mode(tmp_path):
    """The Hong 2018 item end to end at its smoke size (30 x 30, to 1 s, resumed to 2 s): the case is recorded
    as run, not FAILED (it once unpacked fewer values than dendrite_hong2018.figures returns)."""
    suite = gpu_suite.Suite(tmp_path, budget=120.0, smoke=True)
    gpu_suite.hong2018(suite, time.perf_counter() + 120.0)
    cases = json.loads((tmp_path / "gpu_suite.json").read_text())["items"]["hong2018"]["cases"]
    assert len(cases) == 1 and cases[0]["result"].startswith("reached t = 2.0 s"), cases
