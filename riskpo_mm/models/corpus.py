"""The project's own text corpus, for training the compact tokenizer.

A deterministic generator of the text our tasks produce: geometry and math
prompts, LaTeX, multiple-choice scaffolding, `<think>` reasoning with
`\\boxed{}` answers, Python code blocks and chat boilerplate. Nothing is read
from disk or the network, so the compact tokenizer is reproducible anywhere.
"""

from __future__ import annotations

import random

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SHAPES = ("triangle", "rectangle", "square", "circle", "parallelogram", "trapezoid", "rhombus", "polygon")
_LATEX = (
    r"\frac{{{a}}}{{{b}}}", r"\sqrt{{{a}}}", r"{a}\sqrt{{{b}}}", r"{a}^\circ", r"\angle {p}{q}{r}",
    r"\triangle {p}{q}{r}", r"\overline{{{p}{q}}}", r"{a}\pi", r"\pi r^2", r"{a} \times {b}", r"{a} \cdot {b}",
    r"x^{{{a}}}", r"\le {a}", r"\ge {b}", r"\neq {a}", r"\approx {a}.{b}", r"\sin {a}^\circ", r"\cos {b}^\circ",
    r"\tan \theta", r"\left( {a} + {b} \right)", r"\dfrac{{{a}}}{{{b}}}", r"{p}{q} \parallel {r}{p}",
)
_QUESTIONS = (
    "In {shape} {p}{q}{r}, the angle at {p} is {a} degrees and the angle at {q} is {b} degrees. Find the angle at {r}.",
    "As shown in the figure, {p}{q} is parallel to {r}{s}. If angle 1 = {a}°, what is angle 2?",
    "The radius of the circle is {a} cm. What is its area? Give your answer in terms of \\pi.",
    "Find the perimeter of a {shape} with sides {a}, {b} and {c}.",
    "<image>\nFind x. Round to the nearest tenth if necessary.",
    "<image>What is the length of {p}{q}?",
    "Triangles {p}{q}{r} and {s}{t}{u} are similar with ratio {a}:{b}. If {p}{q} = {c}, find {s}{t}.",
    "A store sells {a} apples for ${b}. How much do {c} apples cost?",
    "Solve for x: {a}x + {b} = {c}.",
    "What is the value of {a} + {b} \\times {c}?",
    "Compute the sum of all integers from 1 to {a}.",
    "Natalia sold clips to {a} of her friends in April, and then she sold half as many clips in May.",
    "Let f(x) = {a}x^2 - {b}x + {c}. Find f({d}).",
    "How many degrees are in each interior angle of a regular polygon with {a} sides?",
    "The area of the {shape} is {a} square units. Find the height if the base is {b} units.",
)
_INSTRUCTIONS = (
    "Think step by step inside <think> </think> tags, then give the final answer in \\boxed{{}}.",
    "Answer with the option's letter from the given choices directly.",
    "Please reason step by step, and put your final answer within \\boxed{{}}.",
    "Write a Python function that solves the problem. Put your code in a ```python code block.",
    "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
)
_CODE = (
    "def {f}({x}, {y}):\n    return {x} + {y}\n",
    "def {f}(nums):\n    total = 0\n    for n in nums:\n"
    "        if n % 2 == 0:\n            total += n\n    return total\n",
    "def {f}(s: str) -> str:\n    return s[::-1]\n",
    "def {f}(n):\n    if n < 2:\n        return n\n    return {f}(n - 1) + {f}(n - 2)\n",
    "import math\n\n\ndef {f}(r):\n    return math.pi * r ** 2\n",
    "class {F}:\n    def __init__(self, {x}):\n        self.{x} = {x}\n\n"
    "    def __repr__(self):\n        return f\"{F}({{self.{x}!r}})\"\n",
    "assert {f}({a}, {b}) == {c}\n",
    "{x} = [i * i for i in range({a}) if i % {b} == 0]\nprint({x})\n",
    "while {x} > 0:\n    {x} //= 2\n    count += 1\n",
    "try:\n    value = int(input())\nexcept ValueError:\n    value = None\n",
    "from typing import List\n\n\ndef {f}(items: List[int]) -> int:\n    return max(items) - min(items)\n",
    "lambda {x}, {y}: ({x} * {y}) % {a}\n",
    "with open(path) as fh:\n    lines = [line.strip() for line in fh]\n",
)
_NAMES = ("solve", "area", "count_even", "reverse", "fib", "gcd", "is_prime", "merge", "max_diff", "add", "parse")
_VARS = ("x", "y", "n", "k", "a", "b", "result", "items", "value", "left", "right", "total", "i", "j")
_FILLER = (
    "You are a helpful assistant.", "system", "user", "assistant", "Question:", "Answer:", "Choices:",
    "Solution:", "Therefore,", "So the answer is", "First, note that",
    "Since the sum of angles in a triangle is 180°,",
    "By the Pythagorean theorem,", "Let me check:", "Wait,", "Hence", "the final answer is", "Options:",
)


def _fill(rng: random.Random, template: str) -> str:
    pts = rng.sample(_LETTERS, 6)
    return template.format(
        shape=rng.choice(_SHAPES), p=pts[0], q=pts[1], r=pts[2], s=pts[3], t=pts[4], u=pts[5],
        a=rng.randint(1, 180), b=rng.randint(1, 99), c=rng.randint(1, 999), d=rng.randint(0, 20),
        f=rng.choice(_NAMES), F=rng.choice(_NAMES).title().replace("_", ""),
        x=rng.choice(_VARS), y=rng.choice(_VARS),
    )


def _choices(rng: random.Random) -> str:
    vals = rng.sample(range(1, 200), 4)
    return "Choices:\n" + "\n".join(f"({_LETTERS[i]}) {v}" for i, v in enumerate(vals))


def _reasoning(rng: random.Random) -> str:
    a, b = rng.randint(1, 179), rng.randint(1, 99)
    latex = " ".join(_fill(rng, rng.choice(_LATEX)) for _ in range(rng.randint(1, 3)))
    ans = rng.choice((str(a + b), f"{a}.{b}", _fill(rng, rng.choice(_LATEX)), rng.choice("ABCD")))
    return (
        f"<think>\n{rng.choice(_FILLER)} {a} + {b} = {a + b}. {latex}\n"
        f"{rng.choice(_FILLER)} {a} - {b} = {a - b}, and {a} * {b} = {a * b}.\n</think>\n"
        f"The answer is \\boxed{{{ans}}}."
    )


def corpus_lines(n: int = 4000, seed: int = 0) -> list[str]:
    """`n` deterministic documents mixing every kind of text our tasks contain."""
    rng = random.Random(seed)
    makers = (
        lambda: _fill(rng, rng.choice(_QUESTIONS)) + "\n" + rng.choice(_INSTRUCTIONS).format(),
        lambda: _fill(rng, rng.choice(_QUESTIONS)) + "\n" + _choices(rng),
        lambda: _reasoning(rng),
        lambda: "```python\n" + _fill(rng, rng.choice(_CODE)) + "```",
        lambda: " ".join(_fill(rng, rng.choice(_LATEX)) for _ in range(4)),
        lambda: " ".join(str(rng.randint(0, 10 ** rng.randint(1, 6))) for _ in range(8)),
        lambda: " ".join(rng.choice(_FILLER) for _ in range(6)),
    )
    return [rng.choice(makers)() for _ in range(n)]
