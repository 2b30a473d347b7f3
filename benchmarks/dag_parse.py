"""Parse time of the project's DAG files vs a trivial one-task DAG, in the same process.

The dag-processor re-parses every file continuously, so a DAG file must stay as cheap as a
trivial one: no heavy imports, no I/O at parse time. Target: ours <= 1.5x the trivial DAG.

Each file is parsed the way the dag-processor does it (``DagBag.process_file``):

* cold: in a fresh interpreter that has already imported Airflow (as a dag-processor child
  has), so the file pays for its own imports and first construction: the number that
  matters for a heavy top-level import. Median of ``--fresh`` processes.
* warm: ``--repeat`` re-parses in one process (imports cached): pure DAG construction cost.

    python benchmarks/dag_parse.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL = '''
from datetime import datetime
from airflow.sdk import dag, task

@dag(dag_id="trivial", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["bench"])
def trivial():
    @task
    def hello():
        return 1
    hello()

trivial()
'''


def _parse_seconds(bag, path: Path) -> float:
    t0 = time.perf_counter()
    found = bag.process_file(str(path), only_if_updated=False)
    elapsed = time.perf_counter() - t0
    if not found:
        raise SystemExit(f"{path} produced no DAG: {bag.import_errors}")
    return elapsed


_COLD_PROBE = """
import sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk  # noqa: F401  (preloaded by the dag-processor parent)
bag = DagBag(dag_folder=sys.argv[4], collect_dags=False)
t0 = time.perf_counter()
assert bag.process_file(sys.argv[1], only_if_updated=False), bag.import_errors
print(time.perf_counter() - t0)
"""


def _cold_seconds(path: Path, tmp: str, runs: int) -> float:
    import subprocess

    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _COLD_PROBE, str(path), str(ROOT / "plugins"), str(ROOT / "dags"), tmp],
            capture_output=True, text=True, check=True, env=dict(os.environ),
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--fresh", type=int, default=7, help="fresh processes per file for the cold figure")
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "dags")]
    from airflow.dag_processing.dagbag import DagBag

    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp) / "trivial.py"
        trivial.write_text(TRIVIAL)
        bag = DagBag(dag_folder=tmp, collect_dags=False)
        files = [trivial] + sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
        cold = {p.name: _cold_seconds(p, tmp, args.fresh) for p in files}
        warm = {p.name: statistics.median(_parse_seconds(bag, p) for _ in range(args.repeat)) for p in files}

    print(f"{'file':28} {'cold ms':>8} {'x trivial':>10} {'warm ms':>8} {'x trivial':>10}")
    worst_cold = worst_warm = 0.0
    for name in cold:
        rc, rw = cold[name] / cold["trivial.py"], warm[name] / warm["trivial.py"]
        if name != "trivial.py":
            worst_cold, worst_warm = max(worst_cold, rc), max(worst_warm, rw)
        print(f"{name:28} {1000 * cold[name]:8.1f} {rc:10.2f} {1000 * warm[name]:8.2f} {rw:10.2f}")
    print(f"\nworst cold ratio vs trivial DAG: {worst_cold:.2f}x (target <= 1.5x): "
          f"{'PASS' if worst_cold <= 1.5 else 'FAIL'}")
    print(f"worst warm ratio vs trivial DAG: {worst_warm:.2f}x (construction of all tasks and Params)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
