"""Grading tables: (record, response, expected accuracy) across task types.

``T(x)`` wraps a final-answer text in the template's reasoning block.
"""

from __future__ import annotations


def T(answer: str, think: str = "Work it out step by step.") -> str:
    return f"<think>{think}</think>\n{answer}"


def B(x: str) -> str:
    return T(f"The final answer is \\boxed{{{x}}}.")


def _math(gold: str, response: str, acc: int) -> tuple[dict, str, int]:
    return {"id": f"m-{gold}", "task": "math", "answer": gold}, response, acc


def _geo(gold: str, response: str, acc: int, task: str = "geometry") -> tuple[dict, str, int]:
    return {"id": f"g-{gold}", "task": task, "answer": gold}, response, acc


CHOICES4 = ["12 cm", "15 cm", "18 cm", "24 cm"]


def _mcq(gold: str, response: str, acc: int, choices: list | None = CHOICES4) -> tuple[dict, str, int]:
    return {"id": f"c-{gold}", "task": "mcq", "answer": gold, "choices": choices}, response, acc


MATH_CASES = [
    # LaTeX variants of the same value
    _math("\\frac{1}{2}", B("\\frac{1}{2}"), 1),
    _math("\\frac{1}{2}", B("\\dfrac{1}{2}"), 1),
    _math("\\frac{1}{2}", B("\\tfrac12"), 1),
    _math("\\frac{1}{2}", B("1/2"), 1),
    _math("\\frac{1}{2}", B("0.5"), 1),
    _math("\\frac{1}{2}", B("\\frac{2}{4}"), 1),
    _math("\\frac{1}{2}", B("\\frac{1}{3}"), 0),
    _math("1/2", B("\\left(\\frac{1}{2}\\right)"), 1),
    _math("2\\sqrt{3}", B("\\sqrt{12}"), 1),
    _math("2\\sqrt{3}", B("2 \\sqrt 3"), 1),
    _math("2\\sqrt{3}", B("3\\sqrt{2}"), 0),
    _math("\\sqrt{2}/2", B("\\frac{\\sqrt{2}}{2}"), 1),
    _math("\\sqrt{2}/2", B("\\frac{1}{\\sqrt{2}}"), 1),
    _math("x^2+2x+1", B("(x+1)^2"), 1),
    _math("x^2+2x+1", B("x^2+1"), 0),
    _math("\\pi", B("\\pi"), 1),
    _math("2\\pi", B("2 \\pi"), 1),
    _math("\\pi/2", B("\\frac{\\pi}{2}"), 1),
    _math("3", B("3.0"), 1),
    _math("3", B("x = 3"), 1),
    _math("3", B("\\text{3}"), 1),
    _math("3", B("03"), 1),
    _math("3", B("4"), 0),
    _math("-7", B("-7"), 1),
    _math("-7", B("7"), 0),
    _math("10", B("10\\%"), 1),  # math-verify accepts a percent sign on the same number
    _math("\\{1,2\\}", B("\\{2,1\\}"), 1),
    _math("(1,2)", B("(1, 2)"), 1),
    _math("[0,1]", B("[0, 1]"), 1),
    _math("[0,1]", B("(0, 1)"), 0),
    _math("e^{2}", B("e^2"), 1),
    _math("\\ln 2", B("\\ln(2)"), 1),
    _math("12", B("\\mathbf{12}"), 1),
    _math("12", B("12"), 1),
    # unicode minus and thousands separators
    _math("-3", B("\u22123"), 1),
    _math("-3", B("\u2212 3"), 1),
    _math("-\\frac{1}{4}", B("\u2212\\frac{1}{4}"), 1),
    _math("1000", B("1,000"), 1),
    _math("1000000", B("1,000,000"), 1),
    _math("1234567", B("1{,}234{,}567"), 1),
    _math("12345.6", B("12,345.6"), 1),
    _math("1000", B("1\\,000"), 1),
    _math("1000", B("100"), 0),
    # escaped dollars are prices, not math delimiters
    _math("\\$18.90", B("\\$18.90"), 1),
    _math("18.90", B("\\$18.90"), 1),
    _math("\\$18.90", B("18.9"), 1),
    _math("\\$18.90", B("\\$19.90"), 0),
    # comma groups: thousands in a lone number, never inside tuples and intervals
    _math("1234", B("1,234"), 1),
    _math("(1,234)", B("(1, 234)"), 1),
    _math("(1, 234)", B("(1,234)"), 1),
    _math("(1,234)", B("1234"), 0),
    _math("(2,12) \\cup (12,102)", B("(2,12) \\cup (12,102)"), 1),
    _math("(2,12) \\cup (12,102)", B("(2,12) \\cup (12102)"), 0),
    _math("1000", B("1 000"), 1),
    # separately boxed parts of one answer
    _math("\\{1,2,3\\}", T("\\boxed{1},\\boxed{2},\\boxed{3}"), 1),
    _math("1, 2", T("\\boxed{1} and \\boxed{2}"), 1),
    _math("-2, 1", T("\\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}"), 1),
    _math("2", T("\\boxed{1} and \\boxed{2}"), 0),
    _math("2", T("\\boxed{1}, so then \\boxed{2}"), 1),
    # a whole solution boxed: the inner box is the answer
    _math("7", T("\\boxed{We add the two and get \\boxed{7}.}"), 1),
    # list gold: its elements as one answer set
    ({"id": "m-list", "task": "math", "answer": [1, 2]}, B("1, 2"), 1),
    ({"id": "m-list", "task": "math", "answer": [1, 2]}, B("\\{2, 1\\}"), 1),
    ({"id": "m-list", "task": "math", "answer": [1, 2]}, B("[1, 2]"), 0),
    ({"id": "m-list1", "task": "math", "answer": ["7"]}, B("7"), 1),
    ({"id": "m-num", "task": "math", "answer": 2.5}, B("\\frac{5}{2}"), 1),
    # nested and several boxes: the last top-level box wins
    _math("5", T("\\boxed{\\boxed{5}}"), 1),
    _math("5", T("\\boxed{\\frac{10}{\\boxed{2}}}"), 1),
    _math("5", T("First \\boxed{4}, on reflection \\boxed{5}"), 1),
    _math("5", T("First \\boxed{5}, on reflection \\boxed{4}"), 0),
    _math("5", "<think>maybe \\boxed{5}</think> so \\boxed{6}", 0),
    _math("5", T("\\fbox{5}"), 1),
    _math("\\frac{3}{4}", T("\\boxed{\\frac{3}{4}}"), 1),
    _math("\\frac{3}{4}", T("\\boxed{\\frac{3}{4}"), 0),  # unclosed
    # answer phrase without a box
    _math("42", T("The answer is 42."), 1),
    _math("42", T("Final answer: 42"), 1),
    _math("42", T("the answer is $42$"), 1),
    _math("42", T("answer = 41"), 0),
    # empty and truncated
    _math("42", "", 0),
    _math("42", "   ", 0),
    _math("42", "<think>Let me compute 6*7 = ", 0),
    _math("42", "<think>6*7=42</think>", 0),
    _math("42", T("I cannot solve this."), 0),
    _math("42", T("\\boxed{}"), 0),
    _math("42", "\\boxed{42}", 1),
    _math("42", "<think>\\boxed{41}</think>\\boxed{42}", 1),
]

GEOMETRY_CASES = [
    # degrees
    _geo("30", B("30^\\circ"), 1),
    _geo("30", B("30^{\\circ}"), 1),
    _geo("30", B("30\u00b0"), 1),
    _geo("30^\\circ", B("30"), 1),
    _geo("30", B("\\frac{\\pi}{6}"), 0),
    _geo("60", B("60 degrees"), 1),
    _geo("45", B("44"), 0),
    # units stripped
    _geo("5", B("5\\text{ cm}"), 1),
    _geo("5", B("5 cm"), 1),
    _geo("5", B("5\\,\\mathrm{cm}"), 1),
    _geo("12", B("12 \\text{ square units}"), 1),
    _geo("12", B("12\\text{ cm}^2"), 1),
    _geo("5\\text{ cm}", B("5"), 1),
    _geo("5", B("6 cm"), 0),
    # fractions, roots, pi with tolerance
    _geo("2\\sqrt{3}", B("3.4641"), 1),
    _geo("2\\sqrt{3}", B("3.46"), 1),
    _geo("2\\sqrt{3}", B("3.5"), 0),
    _geo("2\\sqrt{3}", B("3"), 0),
    _geo("2\\sqrt{3}", B("3.47"), 0),
    _geo("\\frac{25}{2}", B("12.5"), 1),
    _geo("12.5", B("\\frac{25}{2}"), 1),
    _geo("\\frac{1}{3}", B("0.333"), 1),
    _geo("\\frac{1}{3}", B("0.33"), 1),
    _geo("\\frac{1}{3}", B("0.3"), 0),
    _geo("4\\pi", B("12.566"), 1),
    _geo("4\\pi", B("12.57"), 1),
    _geo("4\\pi", B("4\\pi"), 1),
    _geo("4\\pi", B("12"), 0),
    _geo("16\\pi", B("16 \\pi \\text{ cm}^2"), 1),
    _geo("7", B("7.0001"), 0),  # four decimals claim 7.0001: a near miss, not 7 (docs/grading.md)
    _geo("7", B("7.01"), 0),
    _geo("100", B("100.00"), 1),
    _geo("100", B("101"), 0),
    _geo("0.25", B("\\frac14"), 1),
    _geo("-2.5", B("\u22122.5"), 1),
    _geo("1500", B("1,500"), 1),
    _geo("1500", B("1,500 m"), 1),
    _geo("3.6", B("3.60"), 1),
    _geo("3.6", B("3.59"), 0),
    _geo("x=4", B("4"), 1),
    _geo("4", B("AB = 4"), 1),
    _geo("\\sqrt{2}", B("1.414"), 1),
    _geo("\\sqrt{2}", B("1.41"), 1),
    _geo("\\sqrt{2}", B("1.4"), 0),
    # tolerance policy (docs/grading.md): equal values in any form, decimals rounded to what they state
    _geo("8.5", B("x = \\frac{17}{2}"), 1),
    _geo("60", B("60.0^{\\circ}"), 1),
    _geo("12", B("\\sqrt{144}"), 1),
    _geo("3\\sqrt{3}", B("5.20"), 1),
    _geo("3\\sqrt{3}", B("5.196"), 1),
    _geo("3\\sqrt{3}", B("5.2"), 0),
    _geo("3\\sqrt{3}", B("5.19"), 0),
    _geo("48", B("48.0038"), 0),
    _geo("120", B("120.0096"), 0),
    _geo("48", B("48.000"), 1),
    _geo("4\\pi", B("12.6"), 1),
    _geo("4\\pi", B("12.57 \\text{ cm}^2"), 1),
    _geo("8", "", 0),
    _geo("8", "<think>The side is", 0),
    _geo("8", T("so it's 8"), 0),
    _geo("8", T("\\boxed{8}"), 1),
    # numeric task type shares the grader
    _geo("0.001", B("0.001"), 1, "numeric"),
    _geo("0.001", B("0.002"), 0, "numeric"),
    _geo("6.02\\times10^{23}", B("6.02 \\times 10^{23}"), 1, "numeric"),
    _geo("6.02e23", B("6.02\\times 10^{23}"), 1, "numeric"),
    _geo("2.5", B("5/2"), 1, "numeric"),
    _geo("2.5", B("2.4"), 0, "numeric"),
    _geo("1000", B("1\u202f000"), 1, "numeric"),
]

MCQ_CASES = [
    _mcq("B", B("B"), 1),
    _mcq("B", B("(B)"), 1),
    _mcq("B", B("B."), 1),
    _mcq("B", B("B. 15 cm"), 1),
    _mcq("B", B("\\text{B}"), 1),
    _mcq("B", B("\\text{(B) }15 cm"), 1),
    _mcq("B", B("15 cm"), 1),
    _mcq("B", B("b"), 1),
    _mcq("B", B("C"), 0),
    _mcq("B", B("18 cm"), 0),
    _mcq("(B)", B("B"), 1),
    _mcq("15 cm", B("B"), 1),
    _mcq("B", T("Answer: B"), 1),
    _mcq("B", T("The answer is (B)."), 1),
    _mcq("B", T("answer is B"), 1),
    _mcq("B", T("(B)"), 1),
    _mcq("B", T("B"), 1),
    _mcq("B", "B", 1),
    _mcq("B", T("B. 15 cm"), 1),
    # traps
    _mcq("B", B("A, B"), 0),
    _mcq("B", B("A or B"), 0),
    _mcq("B", B("B and D"), 0),
    _mcq("B", B("(A)(B)"), 0),
    _mcq("B", B("ABCD"), 0),
    _mcq("B", T("\\boxed{B} \\boxed{C}"), 0),
    _mcq("C", T("\\boxed{B} \\boxed{C}"), 1),
    _mcq("B", "<think>It is \\boxed{B}</think>\\boxed{A}", 0),
    _mcq("B", "<think>It is \\boxed{A}</think>\\boxed{B}", 1),
    _mcq("B", B("E"), 0),
    _mcq("B", B("15"), 0),
    _mcq("B", T("Because both triangles are similar, the ratio gives a length we compare to each option."), 0),
    _mcq("A", T("A triangle with sides 3, 4, 5 is right-angled, so the answer follows."), 0),
    _mcq("B", T("I think the answer is B. Actually no, it is C."), 0),
    _mcq("B", "", 0),
    _mcq("B", "<think>Comparing the options, the", 0),
    _mcq("B", T("\\boxed{"), 0),
    _mcq("B", B("\\mathrm{B}"), 1),
    _mcq("D", B("24 cm"), 1),
    _mcq("D", B("D) 24 cm"), 1),
    _mcq("D", B("24"), 0),
    _mcq("A", B("A"), 1, choices=None),
    _mcq("F", B("F"), 1, choices=None),
    _mcq("A", B("Yes"), 1, choices=["Yes", "No"]),
    _mcq("B", B("no"), 1, choices=["Yes", "No"]),
    _mcq("B", B("Yes"), 0, choices=["Yes", "No"]),
]

_ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(10, 5) == 15"]


def _code(response: str, acc: int, tests=None) -> tuple[dict, str, int]:
    return {"id": "code", "task": "code", "tests": tests or _ADD_TESTS}, response, acc


def PY(code: str) -> str:
    return T(f"Here is the solution.\n```python\n{code}\n```")


CODE_CASES = [
    _code(PY("def add(a, b):\n    return a + b"), 1),
    _code(PY("def add(a, b):\n    return a - b"), 0),
    _code(PY("def add(a, b):\n    return a + b + (a == 10)"), 0),
    _code(PY("def add(a, b)\n    return a + b"), 0),
    _code(T("```\ndef add(a, b):\n    return a + b\n```"), 1),
    _code(T("```python\ndef add(a, b):\n    return 0\n```\nfixed:\n"
            "```python\ndef add(a, b):\n    return a + b\n```"), 1),
    _code(T("def add(a, b):\n    return a + b"), 0),
    _code("", 0),
    _code(T("```python\ndef add(a, b):\n    return a +"), 0),
    _code(PY("import sys\nn = int(sys.stdin.readline())\nprint(n * n)"), 1,
          tests={"inputs": ["3\n", "12\n"], "outputs": ["9\n", "144\n"]}),
    _code(PY("n = int(input())\nprint(n + n)"), 0, tests={"inputs": ["3\n", "12\n"], "outputs": ["9\n", "144\n"]}),
    _code(PY("class Solution:\n    def twoSum(self, nums, t):\n        d = {}\n        for i, x in enumerate(nums):\n"
             "            if t - x in d:\n                return [d[t - x], i]\n            d[x] = i"), 1,
          tests={"inputs": ["[2, 7, 11, 15]\n9", "[3, 2, 4]\n6"], "outputs": ["[0, 1]", "[1, 2]"],
                 "fn_name": "twoSum"}),
]

ALL_CASES = MATH_CASES + GEOMETRY_CASES + MCQ_CASES + CODE_CASES
