"""The order pipeline of examples/order_pipeline.json, with tasks written in Python.

    python3 examples/order_pipeline.py [--db PATH]

Prices three order lines side by side (a chord: each line's quantity times
its unit price in cents, then the sum), adds shipping, then a group: the
total as it is, and a step that fails once and is retried. Prints the
outcome line as `trellis-demo run examples/order_pipeline.json` does and
exits 0 when the result is [2647, 2] (ctest runs it).
"""

import argparse
import json
import sys

import trellis

app = trellis.App()


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(values):
    return sum(values)


@app.task
def add(x, y):
    return x + y


@app.task
def identity(value):
    return value


@app.task(bind=True)
def flaky(ctx, failures):
    """Fails its first `failures` attempts, then returns the attempt number."""
    if ctx.attempt <= failures:
        raise ConnectionError(f"flaky: attempt {ctx.attempt} of {failures} planned failures")
    return ctx.attempt


# [pipeline]
order = (
    trellis.chord([mul.s(3, 250), mul.s(1, 1200), mul.s(2, 99)])(xsum.s())
    | add.s(499)
    | trellis.group(
        identity.s(),
        flaky.si(1).set(max_retries=3, default_retry_delay=0.02, retry_backoff=False),
    )
)
# [pipeline]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=":memory:", help="SQLite store (default: in memory)")
    args = parser.parse_args()
    app.engine_options["db"] = args.db
    with app:
        run = app.submit(order)
        try:
            result = run.wait(timeout=60)
        except trellis.WorkflowFailed as failed:
            print(json.dumps({"id": run.id, "state": "FAILURE", "result": None,
                              "error": {"type": failed.type, "message": failed.message, "task": failed.task}}))
            return 1
        print(json.dumps({"id": run.id, "state": "SUCCESS", "result": result, "error": None}, separators=(",", ":")))
        return 0 if result == [2647, 2] else 1


if __name__ == "__main__":
    sys.exit(main())
