"""A stage run as its own process, for the kill tests (``test_faults_kill.py``); not a test.

``python -m tests.reliability.stage_child '<json>'`` runs :func:`feedbackloop.pipeline.datasets`
for one run against local or S3 staging, like the ``build_training_sets`` task would. With
``"stop_mid_write": "<artifact>"`` (local staging) the copy of that artifact into staging
writes half of its bytes to the temporary file, prints ``HALF <temporary path>`` and waits to
be killed: the parent then SIGKILLs the process at a known point in the middle of a write.
(For S3 the parent stalls the upload in its fault proxy instead; the child is not touched.)
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any


def _stop_mid_write(artifact: str) -> None:
    import shutil

    import feedbackloop.staging as staging_module

    real_copy = shutil.copyfile

    def copy_then_hang(src: Any, dst: Any, **kwargs: Any) -> Any:
        if not Path(dst).name.startswith(f".{artifact}."):
            return real_copy(src, dst, **kwargs)
        data = Path(src).read_bytes()
        with open(dst, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
        print(f"HALF {dst} {len(data)}", flush=True)
        time.sleep(600)  # killed here
        raise AssertionError("not killed")

    staging_module.shutil.copyfile = copy_then_hang  # type: ignore[attr-defined]


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    from feedbackloop import pipeline
    from feedbackloop.staging import open_staging

    client = None
    if args["staging_uri"].startswith("s3://"):
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=args["endpoint_url"],
            region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )
    if args.get("stop_mid_write"):
        _stop_mid_write(args["stop_mid_write"])
    run = pipeline.RunContext(
        dag_id=args["dag_id"],
        run_id=args["run_id"],
        start=datetime.fromisoformat(args["start"]),
        end=datetime.fromisoformat(args["end"]),
    )
    print("STARTED", flush=True)
    summary = pipeline.datasets(
        open_staging(args["staging_uri"], s3_client=client), run, {"min_examples": 10}
    )
    print("DONE", json.dumps(summary, sort_keys=True, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
