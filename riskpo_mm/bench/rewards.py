"""Reward throughput: graded responses/s, sandboxed code runs/s, sandbox overhead.

``python -m riskpo_mm.bench.rewards [--n 200] [--programs 16] [--workers 4] [--json PATH]``

Grader worst cases: the slowest ``score()`` per grader over the pathological
set (``riskpo_mm.rewards.pathological``, 10 MB responses, sympy hangs), in
the main thread and with 8 threads at once.

Baselines measured in the same run: bare math-verify parse+verify for math,
the sequential loop for the pool, a bare ``python -c pass`` for the sandbox.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import subprocess
import sys
import time

from math_verify import parse, verify

from riskpo_mm.rewards import RewardRouter
from riskpo_mm.rewards.pathological import pathological_responses
from riskpo_mm.rewards.symbolic import _parse_gold_cached
from riskpo_mm.rewards.sandbox import CodeJob, SandboxLimits, SandboxPool, run_tests


def _math_batch(n: int) -> tuple[list[dict], list[str]]:
    recs, resps = [], []
    for i in range(n):
        a, b = i + 2, 2 * i + 3
        recs.append({"task": "math", "answer": f"\\frac{{{a}}}{{{b}}}"})
        ans = f"\\dfrac{{{2 * a}}}{{{2 * b}}}" if i % 2 else f"{a + 1}/{b}"
        resps.append(f"<think>Reduce the fraction.</think>\nThe answer is \\boxed{{{ans}}}.")
    return recs, resps


def _choice_batch(n: int) -> tuple[list[dict], list[str]]:
    recs, resps = [], []
    for i in range(n):
        choices = [f"{i + k} cm" for k in range(4)]
        gold = "ABCD"[i % 4]
        recs.append({"task": "mcq", "answer": gold, "choices": choices})
        form = (f"\\boxed{{{gold}}}", f"\\boxed{{({'ABCD'[(i + 1) % 4]})}}", f"Answer: {gold}",
                f"\\boxed{{{choices[i % 4]}}}")[i % 4]
        resps.append(f"<think>Measure the side.</think>\n{form}")
    return recs, resps


def _rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def _worst_latency(router: RewardRouter, task: str, responses: list[str], threads: int) -> float:
    """Slowest score() over ``responses`` (each of ``threads`` threads grades them all)."""
    rec = {"task": task, "answer": "B" if task == "mcq" else "2", "choices": ["1", "2", "3", "4"]}
    worst = [0.0]
    lock = threading.Lock()

    def run() -> None:
        for resp in responses:
            t0 = time.perf_counter()
            router.score(rec, resp)
            dt = time.perf_counter() - t0
            with lock:
                worst[0] = max(worst[0], dt)

    if threads == 1:
        run()
    else:
        ts = [threading.Thread(target=run) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return worst[0]


def _programs(k: int) -> list[CodeJob]:
    code = "def f(x):\n    return {m} * x + 1\n"
    tests = [f"assert f({j}) == {{m}} * {j} + 1" for j in range(5)]
    return [CodeJob(code.format(m=m), [t.format(m=m) for t in tests]) for m in range(k)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.rewards", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="responses per grader")
    ap.add_argument("--programs", type=int, default=16, help="code programs (5 asserts each)")
    ap.add_argument("--workers", type=int, default=4, help="sandbox pool size")
    ap.add_argument("--repeats", type=int, default=15, help="runs for the overhead median")
    ap.add_argument("--pathological-mb", type=float, default=10.0, help="size of the long pathological responses")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    router = RewardRouter()
    rows: list[tuple[str, float, str, str]] = []

    wrecs, wresps = _math_batch(20)  # warm-up: imports, sympy and regex caches
    router.score_batch([{**r, "answer": r["answer"] + "+1"} for r in wrecs], wresps)
    recs, resps = _math_batch(args.n)
    golds = [r["answer"] for r in recs]
    preds = [s.split("\\boxed{")[1].rsplit("}", 1)[0] for s in resps]
    raw = _rate(lambda: [verify(parse(f"${g}$"), parse(f"${p}$")) for g, p in zip(golds, preds)], args.n)
    _parse_gold_cached.cache_clear()
    math_rate = _rate(lambda: router.score_batch(recs, resps), args.n)
    rows.append(("math-verify parse+verify (baseline)", raw, "resp/s", "1.00x"))
    rows.append(("math graded (score_batch)", math_rate, "resp/s", f"{math_rate / raw:.2f}x"))
    crecs, cresps = _choice_batch(args.n)
    choice_rate = _rate(lambda: router.score_batch(crecs, cresps), args.n)
    rows.append(("multiple choice graded", choice_rate, "resp/s", f"{choice_rate / raw:.2f}x"))
    bad = [r for _, r in pathological_responses(int(args.pathological_mb * 1e6))]
    for task in ("math", "geometry", "mcq"):
        for threads, where in ((1, "main thread"), (8, "8 threads")):
            worst = _worst_latency(router, task, bad, threads)
            rows.append((f"{task} worst case, pathological set ({where})", worst * 1e3, "ms", ""))

    jobs = _programs(args.programs)
    limits = SandboxLimits(timeout_s=5.0, memory_mb=512)
    seq = _rate(lambda: [run_tests(j.code, j.tests, limits=limits) for j in jobs], len(jobs))
    with SandboxPool(workers=args.workers, limits=limits) as pool:
        results = []
        par = _rate(lambda: results.extend(pool.run_many(jobs)), len(jobs))
    assert all(r.status == "ok" for r in results), results
    rows.append(("code runs, sequential (5 asserts)", seq, "runs/s", "1.00x"))
    rows.append((f"code runs, pool of {args.workers}", par, "runs/s", f"{par / seq:.2f}x"))

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    bare = statistics.median(timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
                             for _ in range(args.repeats))
    rows.append(("bare `python -c pass` (median)", bare * 1e3, "ms", "1.00x"))
    for label, mode in (("bwrap + cgroup", {}), ("bwrap, no cgroup", {"cgroup": "off"}),
                        ("isolation none", {"isolation": "none"})):  # per isolation mode, same run
        lim = SandboxLimits(**{**limits.__dict__, **mode})
        boxed = statistics.median(timed(lambda: run_tests("pass", ["assert True"], limits=lim))
                                  for _ in range(args.repeats))
        rows.append((f"one sandboxed run, {label} (median)", boxed * 1e3, "ms", f"{boxed / bare:.2f}x"))
    rows.append(("sandbox overhead over bare python", (boxed - bare) * 1e3, "ms", ""))

    iso = run_tests("pass", ["assert True"], limits=limits).isolation
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>9}  {'unit':<6}  ratio (vs the group's baseline row)")
    for name, val, unit, ratio in rows:
        print(f"{name:<{width}}  {val:>9.1f}  {unit:<6}  {ratio}")
    print(f"isolation: {iso}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": [{"measure": n, "value": v, "unit": u, "ratio": r} for n, v, u, r in rows],
                       "isolation": iso, "grader_stats": router.stats()}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
