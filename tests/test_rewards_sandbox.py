"""Sandbox behaviour on ordinary programs: test formats, statuses, limits, the pool."""

from __future__ import annotations

import time

import pytest

from riskpo_mm.rewards.sandbox import CodeJob, SandboxLimits, SandboxPool, normalise_tests, run_many, run_tests

ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 0) == 0"]
FAST = SandboxLimits(timeout_s=1.0, memory_mb=256)


def test_asserts_all_pass_is_ok():
    res = run_tests(ADD, ADD_TESTS)
    assert (res.status, res.passed, res.total) == ("ok", 3, 3) and res.all_passed


def test_failing_asserts_are_wrong_with_partial_count():
    res = run_tests("def add(a, b):\n    return a * b if a else 0\n", ADD_TESTS)
    assert (res.status, res.passed) == ("wrong", 2)


def test_syntax_error_is_error_with_stderr_tail():
    res = run_tests("def add(a, b)\n    return a + b\n", ADD_TESTS)
    assert res.status == "error" and res.passed == 0 and "SyntaxError" in res.stderr_tail


def test_exception_in_a_test_is_error():
    res = run_tests(ADD, ADD_TESTS + ["assert sub(1, 1) == 0"])
    assert (res.status, res.passed, res.total) == ("error", 3, 4)


def test_stdin_stdout_cases_compare_whitespace_and_floats_leniently():
    code = "import sys\na, b = map(float, sys.stdin.read().split())\nprint(a / b, '  ')\n"
    tests = {"inputs": ["1 3\n", "4 2\n", "1 1\n"], "outputs": ["0.3333333333\n", "2.0\n\n", "2"]}
    res = run_tests(code, tests)
    assert (res.status, res.passed, res.total) == ("wrong", 2, 3)


def test_stdin_program_calling_exit_zero_still_counts():
    code = "import sys\nprint(int(input()) + 1)\nsys.exit(0)\n"
    assert run_tests(code, {"inputs": ["1\n"], "outputs": ["2\n"]}).status == "ok"


def test_call_based_cases_use_fn_name_or_solution_method():
    tests = {"inputs": ["[1, 2, 3]", "[]"], "outputs": ["6", "0"], "fn_name": "total"}
    assert run_tests("def total(xs):\n    return sum(xs)\n", tests).status == "ok"
    method = "class Solution:\n    def total(self, xs):\n        return float(sum(xs))\n"
    assert run_tests(method, tests).status == "ok"
    missing = run_tests("x = 1\n", tests)
    assert missing.status == "error" and "missing function" in missing.detail


def test_timeout_keeps_the_count_of_tests_passed_before_it():
    res = run_tests(ADD, ["assert add(1, 1) == 2", "while True: pass", "assert True"], limits=FAST)
    assert (res.status, res.passed, res.total) == ("timeout", 1, 3)


def test_environment_is_minimal_and_work_dir_writable(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak")
    code = ("import os\n"
            "keys = sorted(os.environ)\n"
            "open('scratch.txt', 'w').write('ok')\n"
            "scratch = open('scratch.txt').read()\n")
    res = run_tests(code, ["assert 'AWS_SECRET_ACCESS_KEY' not in keys, keys",
                           "assert set(keys) <= {'PATH', 'LANG', 'HOME', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'PWD'}",
                           "assert scratch == 'ok'"])
    assert res.status == "ok", res


def test_memory_limit_is_configurable():
    code = "data = bytearray(200 * 1024 * 1024)\n"
    assert run_tests(code, ["assert len(data) > 0"], memory_mb=128).status == "memory"
    assert run_tests(code, ["assert len(data) > 0"], memory_mb=512).status == "ok"


def test_standard_library_imports_work_inside():
    code = "import math, re, collections, heapq, itertools, fractions, decimal, json, bisect, functools\n"
    assert run_tests(code, ["assert math.gcd(12, 18) == 6"]).status == "ok"


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
def test_each_isolation_level_runs_and_says_which_and_what_it_leaves_open(isolation):
    res = run_tests(ADD, ADD_TESTS, limits=SandboxLimits(isolation=isolation))
    assert res.status == "ok", res
    assert res.isolation.startswith(isolation) and res.not_covered


def test_tests_see_the_solutions_plain_values_and_call_its_functions():
    code = "N = 3\nPAIR = (1, 'a')\nclass Box:\n    def __init__(self, v):\n        self.v = v\n    def get(self):\n        return self.v\n"
    tests = ["assert N == 3 and PAIR == (1, 'a')", "b = Box([1, 2])\nassert b.get() == [1, 2] and b.v == [1, 2]",
             "import math\nassert math.isclose(Box(0.1 + 0.2).get(), 0.3)"]
    assert run_tests(code, tests).status == "ok"


def test_in_place_changes_to_list_arguments_are_seen_by_the_tests():
    code = "def fill(xs):\n    xs.append(1)\n"
    assert run_tests(code, ["a = []\nfill(a)\nassert a == [1]"]).status == "ok"


def test_exceptions_of_the_solution_reach_the_tests_as_builtin_types():
    code = "def root(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x ** 0.5\n"
    test = "try:\n    root(-1)\n    assert False\nexcept ValueError:\n    pass"
    assert run_tests(code, [test]).status == "ok"


def test_malformed_tests_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="'inputs' and 'outputs'"):
        normalise_tests({"inputs": [1]})
    with pytest.raises(ValueError, match="differ in length"):
        normalise_tests({"inputs": [1], "outputs": []})
    assert normalise_tests('["assert 1"]') == ["assert 1"]
    with pytest.raises(ValueError, match="isolation"):
        SandboxLimits(isolation="chroot")


def test_pool_returns_results_in_order():
    jobs = [CodeJob(f"def add(a, b):\n    return a + b + {k}\n", ADD_TESTS) for k in range(4)]
    res = run_many(jobs, workers=2, limits=FAST)
    assert [r.status for r in res] == ["ok", "wrong", "wrong", "wrong"]
    with SandboxPool(workers=2, limits=FAST) as pool:
        bad = pool.run_many([("x = 1", {"inputs": [1]})])
    assert bad[0].status == "error" and "inputs" in bad[0].detail


def test_batch_time_limit_bounds_the_whole_batch():
    jobs = [("while True: pass", ["assert True"])] * 6
    t0 = time.monotonic()
    res = run_many(jobs, workers=2, limits=SandboxLimits(timeout_s=5.0), batch_timeout_s=1.0)
    assert time.monotonic() - t0 < 3.0
    assert all(r.status == "timeout" for r in res)
