"""Golden-set classification through the OpenAI-compatible classifier: sequential vs concurrent.

The loopback fake OpenAI server (``tests/fakes/openai_server.py``) answers every chat
completion after ``--latency`` seconds (default 0.2, a typical small-model round trip). The
136 golden emails are classified once with one worker and once with ``--concurrency``
workers (default 16), in one run, and both wall times are printed next to the bound
``ceil(136 / 16) x 0.2 s`` (a batch cannot finish before its slowest wave of requests).
Target: concurrent wall time within 1.25x of the bound; the two runs must also give the
same predictions.

By default the fake runs in a forked child process, as a remote endpoint would: it does not
compete with the client for this interpreter's GIL. ``--in-process`` keeps it in a thread.

    python benchmarks/classify.py [--latency 0.2] [--concurrency 16] [--in-process]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.25


def _answers(golden: list[Any]) -> dict[str, Any]:
    from tests.fakes.openai_server import answer

    return {
        g.text: answer(g.category, g.actions, confidence=0.6 + (i % 40) / 100) for i, g in enumerate(golden)
    }


def _serve(pipe: Any, latency: float, table: dict[str, Any]) -> None:
    from tests.fakes.openai_server import FakeOpenAI, Faults, lookup_responder

    with FakeOpenAI(responder=lookup_responder(table), faults=Faults(latency_s=latency)) as fake:
        pipe.send((fake.base_url, fake.api_key))
        pipe.recv()  # stop signal
        pipe.send([str(v) for v in fake.violations + fake.response_violations])


@contextmanager
def fake_server(
    latency: float, table: dict[str, Any], in_process: bool
) -> Iterator[tuple[str, str, list[str]]]:
    """(base URL, key, violations filled in on exit) of a running fake."""
    violations: list[str] = []
    if in_process:
        from tests.fakes.openai_server import FakeOpenAI, Faults, lookup_responder

        with FakeOpenAI(responder=lookup_responder(table), faults=Faults(latency_s=latency)) as fake:
            yield fake.base_url, fake.api_key, violations
            violations.extend(str(v) for v in fake.violations + fake.response_violations)
        return
    parent, child = multiprocessing.get_context("fork").Pipe()
    proc = multiprocessing.get_context("fork").Process(
        target=_serve, args=(child, latency, table), daemon=True
    )
    proc.start()
    try:
        base_url, key = parent.recv()
        yield base_url, key, violations
        parent.send("stop")
        violations.extend(parent.recv())
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()


def _run(classifier: Any, inputs: list[Any]) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    predictions = classifier.classify(inputs)
    return time.perf_counter() - started, predictions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per call on the fake server")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--in-process", action="store_true", help="run the fake in a thread of this process")
    args = parser.parse_args()

    sys.path[:0] = [str(ROOT), str(ROOT / "include")]
    import openai

    from feedbackloop.golden import default_taxonomy, load_golden_set
    from feedbackloop.models.base import EmailInput
    from feedbackloop.models.openai_chat import ChatSettings, OpenAIChatClassifier

    golden = load_golden_set()
    taxonomy = default_taxonomy()
    inputs = [EmailInput.from_golden(g) for g in golden]
    with fake_server(args.latency, _answers(golden), args.in_process) as (base_url, key, violations):
        client = openai.OpenAI(api_key=key, base_url=base_url, timeout=30.0)

        def classifier(workers: int) -> Any:
            return OpenAIChatClassifier(
                client, "gpt-4o-mini", taxonomy, settings=ChatSettings(concurrency=workers)
            )

        classifier(args.concurrency).classify(inputs[: args.concurrency])  # warm connections and imports
        seq_s, seq = _run(classifier(1), inputs)
        con_s, con = _run(classifier(args.concurrency), inputs)

    n = len(inputs)
    bound = math.ceil(n / args.concurrency) * args.latency
    ratio = con_s / bound
    same = [(p.category, p.actions, p.confidence) for p in seq] == [
        (p.category, p.actions, p.confidence) for p in con
    ]
    accuracy = sum(p.category == g.category for p, g in zip(con, golden, strict=True)) / n
    lat = sorted(p.latency_ms for p in con)
    print(
        f"golden emails: {n}; latency per call: {args.latency * 1000:.0f} ms; fake server: "
        f"{'in-process thread' if args.in_process else 'forked process'}"
    )
    print(f"sequential (1 worker):     {seq_s:7.2f} s  ({n / seq_s:6.1f} emails/s)")
    print(
        f"concurrent ({args.concurrency} workers):   {con_s:7.2f} s  ({n / con_s:6.1f} emails/s)  "
        f"speed-up {seq_s / con_s:.1f}x"
    )
    print(
        f"bound ceil({n}/{args.concurrency}) x {args.latency:g} s = {bound:.2f} s; concurrent / bound = "
        f"{ratio:.3f} (target <= {TARGET_RATIO}): {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}"
    )
    print(
        f"per-email latency (concurrent): p50 {statistics.median(lat):.0f} ms, "
        f"p95 {lat[math.ceil(0.95 * n) - 1]:.0f} ms"
    )
    print(
        f"same predictions in both runs: {same}; accuracy vs golden labels: {accuracy:.3f}; "
        f"schema violations: {len(violations)}"
    )
    ok = ratio <= TARGET_RATIO and same and not violations
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
