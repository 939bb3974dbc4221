"""One Engine shared by several Python threads: results are the same as in one thread, and
evaluation releases the GIL so other Python threads run meanwhile."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import betrace
from sdk_traces import RULES, Shop, comparable, orders, to_protobuf


def test_threads_share_one_engine_and_get_the_single_threaded_results():
    engine = betrace.Engine([betrace.Rule(k, v) for k, v in RULES.items()])
    batches = [Shop().record(orders(8 + i)) for i in range(8)]
    inputs = [batch if i % 2 else to_protobuf(batch) for i, batch in enumerate(batches)]
    expected = [comparable(engine.evaluate(x)) for x in inputs]
    assert all(expected)
    start = threading.Barrier(8)

    def run(i: int) -> list:
        start.wait()
        return [comparable(engine.evaluate(inputs[i])) for _ in range(20)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(8)))
    for i, runs in enumerate(results):
        assert all(r == expected[i] for r in runs), f"thread {i}"


def test_evaluation_releases_the_gil():
    # OTLP protobuf input: reading it runs no Python code, so while `evaluate` decodes and
    # evaluates 10 000 spans another Python thread runs only if the GIL is released. The
    # other thread counts; its rate during `evaluate` is compared with its rate while this
    # thread waits on an event (GIL released for certain). Holding the GIL gives a few percent
    # (the interpreter's periodic switches), releasing it the same order as waiting.
    engine = betrace.Engine([betrace.Rule(k, v) for k, v in RULES.items()])
    body = to_protobuf(Shop().record(orders(1500)))
    counter = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1

    def rate(block) -> float:
        before, t0 = counter, time.perf_counter()
        block()
        return (counter - before) / (time.perf_counter() - t0)

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        evaluating = max(rate(lambda: engine.evaluate(body)) for _ in range(3))
        waiting = max(rate(lambda: stop.wait(0.2)) for _ in range(3))
    finally:
        stop.set()
        thread.join()
    assert evaluating > 0.15 * waiting, (evaluating, waiting)
