"""Generated grade-school word problems with exact integer answers, in four levels of difficulty.

Every problem is a short story built from a template, names, items and numbers drawn from a seeded
`random.Random`, so a (seed, level, index) always gives the same problem. The answer is computed
from the drawn numbers by the template's own formula and is a non-negative integer.

Levels (steps and the size of the numbers):

    1  one step, add or subtract, numbers up to 20
    2  one step: add / subtract up to 100, or multiply two numbers up to 10
    3  two steps: multiply then add / subtract, or add then subtract (numbers up to 50)
    4  three steps with multiplication (e.g. a * b + c * d - e, (a + b) * c - d)

Records are the project's (riskpo_mm/data/record.py): task "math", the story as the prompt (the
math instruction, "give the final answer in \\boxed{}", is appended by the prompt template),
the prompt a one-shot chat (a fixed worked example, then the problem), answer the integer as a string, meta {"source": "word_problems", "level": L, "template": name}.

`make_split(n_train, n_test, levels, seed)` draws train and test sets with no problem text in both
(test problems are drawn first; train draws skip any text already in the test set).

CLI: ``python -m riskpo_mm.data.word_problems --out DIR [--levels 1,2,3,4] [--train 400] [--test 100]
[--seed 0]`` writes DIR/train.jsonl and DIR/test.jsonl (per level counts).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

NAMES = ["Tom", "Anna", "Ben", "Lily", "Sam", "Mia", "Jack", "Emma", "Leo", "Zoe", "Max", "Ella", "Noah", "Ava",
         "Ryan", "Lucy", "Omar", "Nina", "Paul", "Sara"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "cookies", "cards", "balloons", "shells", "stamps",
         "toy cars", "oranges", "crayons", "coins", "flowers"]
CONTAINERS = ["boxes", "bags", "packs", "baskets", "jars", "rows", "shelves", "crates"]
LEVELS = (1, 2, 3, 4)
SOURCE = "word_problems"


@dataclass(frozen=True)
class Problem:
    level: int
    template: str
    text: str
    answer: int
    numbers: tuple[int, ...]


def _pick(rng: random.Random, seq, k: int = 1):
    return rng.sample(seq, k) if k > 1 else rng.choice(seq)


# ── level 1: one step, numbers up to 20 ──

def _l1_add(r: random.Random) -> Problem:
    n, it = _pick(r, NAMES), _pick(r, ITEMS)
    a, b = r.randint(2, 12), r.randint(2, 8)
    return Problem(1, "add", f"{n} has {a} {it}. {n} gets {b} more {it}. How many {it} does {n} have now?",
                   a + b, (a, b))


def _l1_sub(r: random.Random) -> Problem:
    n, it = _pick(r, NAMES), _pick(r, ITEMS)
    a = r.randint(6, 20)
    b = r.randint(1, a - 1)
    return Problem(1, "sub", f"{n} has {a} {it}. {n} gives away {b} of them. How many {it} does {n} have left?",
                   a - b, (a, b))


def _l1_two_people(r: random.Random) -> Problem:
    (n1, n2), it = _pick(r, NAMES, 2), _pick(r, ITEMS)
    a, b = r.randint(2, 12), r.randint(2, 8)
    return Problem(1, "together", f"{n1} has {a} {it} and {n2} has {b} {it}. How many {it} do they have together?",
                   a + b, (a, b))


# ── level 2: one step, add/subtract up to 100 or multiply up to 10 x 10 ──

def _l2_add(r: random.Random) -> Problem:
    n, it = _pick(r, NAMES), _pick(r, ITEMS)
    a, b = r.randint(15, 60), r.randint(11, 39)
    return Problem(2, "add_big", f"{n} collected {a} {it} on Monday and {b} {it} on Tuesday. "
                   f"How many {it} did {n} collect in total?", a + b, (a, b))


def _l2_sub(r: random.Random) -> Problem:
    n, it = _pick(r, NAMES), _pick(r, ITEMS)
    a = r.randint(40, 99)
    b = r.randint(11, a - 10)
    return Problem(2, "sub_big", f"A shop had {a} {it}. It sold {b} {it}. How many {it} are left in the shop?",
                   a - b, (a, b))


def _l2_mul(r: random.Random) -> Problem:
    n, it, c = _pick(r, NAMES), _pick(r, ITEMS), _pick(r, CONTAINERS)
    a, b = r.randint(3, 9), r.randint(3, 9)
    return Problem(2, "mul", f"{n} has {a} {c} with {b} {it} in each. How many {it} does {n} have?", a * b, (a, b))


# ── level 3: two steps ──

def _l3_mul_add(r: random.Random) -> Problem:
    n, it, c = _pick(r, NAMES), _pick(r, ITEMS), _pick(r, CONTAINERS)
    a, b, d = r.randint(3, 9), r.randint(3, 9), r.randint(2, 15)
    return Problem(3, "mul_add", f"{n} has {a} {c} with {b} {it} in each, and {d} loose {it}. "
                   f"How many {it} does {n} have in all?", a * b + d, (a, b, d))


def _l3_mul_sub(r: random.Random) -> Problem:
    n, it, c = _pick(r, NAMES), _pick(r, ITEMS), _pick(r, CONTAINERS)
    a, b = r.randint(3, 9), r.randint(3, 9)
    d = r.randint(2, a * b - 1)
    return Problem(3, "mul_sub", f"{n} buys {a} {c} of {it} with {b} {it} in each, then gives {d} {it} to a friend. "
                   f"How many {it} does {n} have left?", a * b - d, (a, b, d))


def _l3_add_sub(r: random.Random) -> Problem:
    n, it = _pick(r, NAMES), _pick(r, ITEMS)
    a, b = r.randint(10, 50), r.randint(5, 30)
    d = r.randint(3, a + b - 1)
    return Problem(3, "add_sub", f"{n} has {a} {it}. {n} finds {b} more {it} and then loses {d} {it}. "
                   f"How many {it} does {n} have now?", a + b - d, (a, b, d))


# ── level 4: three steps with multiplication ──

def _l4_two_products(r: random.Random) -> Problem:
    (n1, n2), it, c = _pick(r, NAMES, 2), _pick(r, ITEMS), _pick(r, CONTAINERS)
    a, b, d, e = r.randint(2, 9), r.randint(3, 9), r.randint(2, 9), r.randint(3, 9)
    f = r.randint(2, min(a * b + d * e - 1, 30))
    return Problem(4, "two_products", f"{n1} has {a} {c} with {b} {it} in each. {n2} has {d} {c} with {e} {it} in "
                   f"each. They give away {f} {it}. How many {it} do they have left together?",
                   a * b + d * e - f, (a, b, d, e, f))


def _l4_sum_times(r: random.Random) -> Problem:
    n, it, c = _pick(r, NAMES), _pick(r, ITEMS), _pick(r, CONTAINERS)
    a, b, k = r.randint(2, 9), r.randint(2, 9), r.randint(3, 9)
    d = r.randint(2, (a + b) * k - 1)
    return Problem(4, "sum_times", f"{n} fills {a} {c} on Monday and {b} {c} on Tuesday, putting {k} {it} in each. "
                   f"Then {n} eats {d} {it}. How many {it} are left?", (a + b) * k - d, (a, b, k, d))


def _l4_price(r: random.Random) -> Problem:
    n = _pick(r, NAMES)
    it = _pick(r, ITEMS)
    a, p, b, q = r.randint(2, 9), r.randint(2, 9), r.randint(2, 9), r.randint(2, 9)
    m = a * p + b * q + r.randint(0, 40)
    return Problem(4, "change", f"{n} has {m} dollars. {n} buys {a} {it} at {p} dollars each and {b} notebooks at "
                   f"{q} dollars each. How many dollars does {n} have left?", m - a * p - b * q, (m, a, p, b, q))


TEMPLATES: dict[int, list[Callable[[random.Random], Problem]]] = {
    1: [_l1_add, _l1_sub, _l1_two_people],
    2: [_l2_add, _l2_sub, _l2_mul],
    3: [_l3_mul_add, _l3_mul_sub, _l3_add_sub],
    4: [_l4_two_products, _l4_sum_times, _l4_price],
}


def draw(level: int, rng: random.Random) -> Problem:
    """One problem of `level` from `rng`."""
    if level not in TEMPLATES:
        raise ValueError(f"level {level} unknown; levels are {list(LEVELS)}")
    return rng.choice(TEMPLATES[level])(rng)


# One worked example before every problem (a one-shot chat prompt): it shows the answer format the math
# grader reads (reasoning in <think></think>, the number in \boxed{}) to a model as small as SmolLM2-135M.
# Its item ("balls") is in no template, so it is never a train or test problem.
EXAMPLE_Q = "Sam has 3 bags with 4 balls in each, and 2 more balls. How many balls does Sam have?"
EXAMPLE_A = "<think>3 bags of 4 balls is 3 * 4 = 12 balls. With 2 more: 12 + 2 = 14.</think>\n\\boxed{14}"
MATH_INSTRUCTION = "Think step by step inside <think> </think>, then give the final answer in \\boxed{}."


def prompt_messages(text: str) -> list[dict]:
    """The chat prompt of a problem: the worked example, then the problem (the prompt template appends the
    math instruction to the last user turn; the example's user turn carries the same instruction)."""
    return [{"role": "user", "content": f"{EXAMPLE_Q}\n\n{MATH_INSTRUCTION}"},
            {"role": "assistant", "content": EXAMPLE_A},
            {"role": "user", "content": text}]


def to_record(p: Problem, split: str, index: int) -> dict:
    return {"id": f"wp-{split}-L{p.level}-{index:05d}", "task": "math", "prompt": prompt_messages(p.text),
            "answer": str(p.answer), "meta": {"source": SOURCE, "level": p.level, "template": p.template}}


def generate(level: int, count: int, seed: int, exclude: set[str] | None = None) -> list[Problem]:
    """`count` distinct problems of `level` (none with a text in `exclude`), deterministic in (seed, level)."""
    rng = random.Random(f"{SOURCE}:{seed}:{level}")
    seen = set(exclude or ())
    out: list[Problem] = []
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 100 * count + 1000:
            raise RuntimeError(f"level {level}: could not draw {count} distinct problems")
        p = draw(level, rng)
        if p.text in seen:
            continue
        seen.add(p.text)
        out.append(p)
    return out


def make_split(n_train: int, n_test: int, levels=LEVELS, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, test) records: n_train and n_test per level, no problem text in both."""
    train, test = [], []
    for level in levels:
        te = generate(level, n_test, seed * 2 + 1)
        tr = generate(level, n_train, seed * 2, exclude={p.text for p in te})
        test += [to_record(p, "test", i) for i, p in enumerate(te)]
        train += [to_record(p, "train", i) for i, p in enumerate(tr)]
    return train, test


def write_split(out_dir: str | Path, n_train: int, n_test: int, levels=LEVELS, seed: int = 0) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = make_split(n_train, n_test, levels, seed)
    paths = []
    for name, recs in (("train", train), ("test", test)):
        p = out / f"{name}.jsonl"
        tmp = p.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in recs))
        tmp.rename(p)
        paths.append(p)
    return paths[0], paths[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m riskpo_mm.data.word_problems", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--levels", default="1,2,3,4")
    ap.add_argument("--train", type=int, default=400, help="train problems per level")
    ap.add_argument("--test", type=int, default=100, help="test problems per level")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    levels = [int(x) for x in a.levels.split(",") if x.strip()]
    tr, te = write_split(a.out, a.train, a.test, levels, a.seed)
    print(f"wrote {tr} and {te}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
