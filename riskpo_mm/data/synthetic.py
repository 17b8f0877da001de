"""Synthetic geometry VQA: figures drawn with pillow, answers verifiable, the image required.

Problem families by level (meta["level"]):

  0  shape_color (mcq: red / blue / green / purple): one shape of random kind,
     size and place. The warm-up family of the CPU demo: a randomly initialised
     ~5M-parameter VLM learns colour from pixels within a few hundred steps,
     while shape, count and position families take it far longer.
  1  largest_shape (mcq), longest_segment (mcq), count_sides, count_points
     big high-contrast shapes, 4 options; the letters A-D always sit in the same
     quadrants (top-left, top-right, bottom-left, bottom-right).
  2  angle_measure (30/45/60/90/120/150 degrees), right_angle (mcq)
  3  triangle_angle (third angle from two labelled ones), parallel_lines
     (corresponding / co-interior angles), rectangle_area, circle_area (area / pi
     from the labelled radius), similar_triangles; the givens are printed in the
     figure only.

Why the image is needed: a family's question text is fixed (the same words for
every record) and its answer is drawn uniformly from ANSWER_SPACE[family]
before the figure is built around it, so text, choices and meta carry no
information about the answer; a text-only oracle can do no better than chance
(tests/test_data_synthetic.py measures it: margin over chance <= 0.05).

Determinism and splits: one random.Random(seed) drives everything, figures are
described by a list of drawing ops, and a figure whose ops repeat an earlier
one is redrawn, so no two records (hence no train and test record) share a
figure. PNGs are rendered at 4x and downsampled for clean edges.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SUPERSAMPLE = 4
QUADRANTS = ((0.29, 0.29), (0.71, 0.29), (0.29, 0.71), (0.71, 0.71))  # A, B, C, D
LETTERS4 = ["A", "B", "C", "D"]
COLORS = ((20, 20, 20), (200, 30, 30), (30, 70, 200), (20, 130, 40), (150, 40, 160))


@dataclass
class Canvas:
    """Drawing ops in unit coordinates ((0, 0) top-left, (1, 1) bottom-right); rendered later."""

    ops: list[tuple] = field(default_factory=list)

    def line(self, p, q, color=COLORS[0]):
        self.ops.append(("line", _r(p), _r(q), color))

    def polygon(self, pts, color=COLORS[0], fill=True):
        self.ops.append(("polygon", tuple(_r(p) for p in pts), color, fill))

    def circle(self, c, r, color=COLORS[0], fill=True):
        self.ops.append(("circle", _r(c), round(r, 4), color, fill))

    def arc(self, c, r, start_deg, end_deg, color=COLORS[0]):
        self.ops.append(("arc", _r(c), round(r, 4), round(start_deg, 2), round(end_deg, 2), color))

    def text(self, p, s, color=COLORS[0]):
        half = 0.03 * len(s) + 0.01  # keep the whole label inside the image
        p = (min(max(p[0], half), 1 - half), min(max(p[1], 0.06), 0.94))
        self.ops.append(("text", _r(p), s, color))

    def key(self) -> str:
        return repr(self.ops)


@dataclass
class Problem:
    """One generated item: its question, gold answer and figure (as drawing ops)."""

    family: str
    level: int
    task: str  # "mcq" or "geometry"
    question: str
    answer: str
    choices: list[str] | None
    canvas: Canvas


def _r(p) -> tuple[float, float]:
    return (round(p[0], 4), round(p[1], 4))


def _polar(c, r, deg):
    """Point at distance r from c, angle deg counter-clockwise from +x (screen y points down)."""
    a = math.radians(deg)
    return (c[0] + r * math.cos(a), c[1] - r * math.sin(a))


def _labels(cv: Canvas):
    """Letters A-D in the outer corner of their quadrant, clear of the shapes."""
    for letter, (x, y) in zip(LETTERS4, QUADRANTS):
        cv.text((0.065 if x < 0.5 else 0.935, 0.065 if y < 0.5 else 0.935), letter)


# ---------------------------------------------------------------- level 0

COLOR_CHOICES = ["red", "blue", "green", "purple"]  # COLORS[1:5], in this order


def shape_color(rng: random.Random, ans: str, cv: Canvas) -> str:
    """One shape of a random kind, size and place; its colour is the answer (the CPU demo's warm-up family)."""
    color = COLORS[1 + LETTERS4.index(ans)]
    c = (rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65))
    r, sides, rot = rng.uniform(0.15, 0.3), rng.choice([0, 3, 4, 5]), rng.uniform(0, 360)
    if sides == 0:
        cv.circle(c, r, color)
    else:
        cv.polygon([_polar(c, r, rot + 360 * k / sides) for k in range(sides)], color)
    return "What colour is the shape?"


# ---------------------------------------------------------------- level 1


def largest_shape(rng: random.Random, ans: str, cv: Canvas) -> str:
    kind = rng.choice(["circle", "square", "triangle"])
    for letter, c in zip(LETTERS4, QUADRANTS):
        r = rng.uniform(0.15, 0.17) if letter == ans else rng.uniform(0.05, 0.09)
        color = rng.choice(COLORS)
        c = (c[0] + rng.uniform(-0.02, 0.02), c[1] + rng.uniform(-0.02, 0.02))
        if kind == "circle":
            cv.circle(c, r, color)
        else:
            n, rot = (4, 45) if kind == "square" else (3, 90)
            cv.polygon([_polar(c, r, rot + 360 * k / n) for k in range(n)], color)
    _labels(cv)
    return "Which shape is the largest?"


def longest_segment(rng: random.Random, ans: str, cv: Canvas) -> str:
    for letter, c in zip(LETTERS4, QUADRANTS):
        length = rng.uniform(0.33, 0.37) if letter == ans else rng.uniform(0.1, 0.19)
        a = rng.uniform(0, 180)
        cv.line(_polar(c, length / 2, a), _polar(c, length / 2, a + 180), rng.choice(COLORS))
    _labels(cv)
    return "Which segment is the longest?"


def count_sides(rng: random.Random, ans: str, cv: Canvas) -> str:
    n = int(ans)
    c = (rng.uniform(0.45, 0.55), rng.uniform(0.45, 0.55))
    r, rot = rng.uniform(0.3, 0.38), rng.uniform(0, 360)
    cv.polygon([_polar(c, r, rot + 360 * k / n) for k in range(n)], rng.choice(COLORS))
    return "How many sides does the polygon have?"


def count_points(rng: random.Random, ans: str, cv: Canvas) -> str:
    pts: list[tuple[float, float]] = []
    while len(pts) < int(ans):
        p = (rng.uniform(0.12, 0.88), rng.uniform(0.12, 0.88))
        if all(math.dist(p, q) > 0.22 for q in pts):
            pts.append(p)
    color = rng.choice(COLORS)
    for p in pts:
        cv.circle(p, 0.065, color)
    return "How many dots are in the figure?"


# ---------------------------------------------------------------- level 2


def _angle(cv: Canvas, vertex, length, start, measure, color, labels=None, arc_r=0.07):
    a, c = _polar(vertex, length, start), _polar(vertex, length, start + measure)
    cv.line(vertex, a, color)
    cv.line(vertex, c, color)
    cv.arc(vertex, arc_r, start, start + measure, color)
    if labels:
        for p, s in zip((a, vertex, c), labels):
            d = math.dist(p, vertex) or 1.0
            off = 0.07 / d if p is not vertex else 0.0
            q = (p[0] + (p[0] - vertex[0]) * off, p[1] + (p[1] - vertex[1]) * off) if off else _polar(vertex, 0.08, start + measure / 2 + 180)
            cv.text(q, s)


def angle_measure(rng: random.Random, ans: str, cv: Canvas) -> str:
    theta = int(ans)
    start = rng.uniform(0, 360)
    _angle(cv, (0.5, 0.5), rng.uniform(0.32, 0.38), start, theta, rng.choice(COLORS), labels=("A", "B", "C"))
    return "What is the measure of angle ABC in degrees?"


def right_angle(rng: random.Random, ans: str, cv: Canvas) -> str:
    for letter, c in zip(LETTERS4, QUADRANTS):
        measure = 90 if letter == ans else rng.choice([35, 50, 130, 145])
        start = rng.uniform(0, 360)
        v = _polar(c, 0.06, start + measure / 2 + 180)
        _angle(cv, v, 0.17, start, measure, rng.choice(COLORS), arc_r=0.05)
    _labels(cv)
    return "Which angle is a right angle?"


# ---------------------------------------------------------------- level 3


def _fit(points, margin=0.14):
    """Scale and translate points into [margin, 1 - margin]^2, keeping the aspect ratio."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys)) or 1.0
    s = (1 - 2 * margin) / span
    ox = margin + ((1 - 2 * margin) - (max(xs) - min(xs)) * s) / 2
    oy = margin + ((1 - 2 * margin) - (max(ys) - min(ys)) * s) / 2
    return [(ox + (x - min(xs)) * s, oy + (y - min(ys)) * s) for x, y in points]


def _triangle_from_angles(a_deg: float, b_deg: float):
    """Base (0,0)-(1,0) with angles a at the left and b at the right; apex above (screen coordinates)."""
    ta, tb = math.tan(math.radians(a_deg)), math.tan(math.radians(b_deg))
    x = tb / (ta + tb)
    return [(0.0, 0.0), (1.0, 0.0), (x, -x * ta)]


def triangle_angle(rng: random.Random, ans: str, cv: Canvas) -> str:
    x = int(ans)
    a = rng.randrange(30, 150 - x + 1, 10)
    b = 180 - x - a
    p, q, apex = _fit(_triangle_from_angles(a, b), margin=0.16)
    cv.polygon([p, q, apex], rng.choice(COLORS), fill=False)
    # labels just outside their vertex: base angles below-left / below-right, x above the apex
    cv.text((p[0] - 0.03, p[1] + 0.08), f"{a}°")
    cv.text((q[0] + 0.03, q[1] + 0.08), f"{b}°")
    cv.text((apex[0], apex[1] - 0.08), "x")
    return "Find x, the third angle of the triangle, in degrees."


def parallel_lines(rng: random.Random, ans: str, cv: Canvas) -> str:
    x = int(ans)
    corresponding = rng.random() < 0.5
    a = x if corresponding else 180 - x  # a: angle between the right ray and the upward transversal at the top line
    y1, y2, color = 0.3, 0.7, rng.choice(COLORS)
    cot = math.cos(math.radians(a)) / math.sin(math.radians(a))
    top, bottom = (0.5 + 0.2 * cot, y1), (0.5 - 0.2 * cot, y2)
    cv.line((0.05, y1), (0.95, y1), color)
    cv.line((0.05, y2), (0.95, y2), color)
    cv.line(_polar(top, 0.14, a), _polar(bottom, 0.14, a + 180), color)
    cv.arc(top, 0.06, 0, a, color)
    cv.text(_polar(top, 0.16, a / 2), f"{a}°")
    # x: same position at the lower crossing (corresponding, x = a) or the upper-left one (x = 180 - a)
    lo, hi = (0, a) if corresponding else (a, 180)
    cv.arc(bottom, 0.06, lo, hi, color)
    cv.text(_polar(bottom, 0.12, (lo + hi) / 2), "x")
    return "The two horizontal lines are parallel. Find x in degrees."


def rectangle_area(rng: random.Random, ans: str, cv: Canvas) -> str:
    area = int(ans)
    w, h = rng.choice([(w, area // w) for w in range(2, 10) if area % w == 0 and 2 <= area // w <= 9])
    s = 0.62 / max(w, h)
    rw, rh = w * s, h * s
    x0, y0 = 0.5 - rw / 2, 0.5 - rh / 2
    cv.polygon([(x0, y0), (x0 + rw, y0), (x0 + rw, y0 + rh), (x0, y0 + rh)], rng.choice(COLORS), fill=False)
    cv.text((0.5, y0 + rh + 0.08), str(w))
    cv.text((x0 + rw + 0.08, 0.5), str(h))
    return "Find the area of the rectangle."


def circle_area(rng: random.Random, ans: str, cv: Canvas) -> str:
    r = math.isqrt(int(ans))
    c, rad = (0.5, 0.5), rng.uniform(0.3, 0.38)
    color = rng.choice(COLORS)
    cv.circle(c, rad, color, fill=False)
    a = rng.uniform(0, 360)
    end = _polar(c, rad, a)
    cv.line(c, end, color)
    cv.circle(c, 0.015, color)
    cv.text(_polar(c, rad / 2, a + 18), str(r))
    return "The labelled segment is the radius. What is the area of the circle divided by pi?"


def similar_triangles(rng: random.Random, ans: str, cv: Canvas) -> str:
    x = int(ans)
    k, q = rng.choice([(k, x // k) for k in (2, 3) if x % k == 0 and 2 <= x // k <= 6])
    p = rng.randint(2, 6)
    color = rng.choice(COLORS)
    base, s, sb = 0.8, 0.05, 0.38 / max(k * p, k * q) * k
    small = [(0.12, base), (0.12 + p * s, base), (0.12, base - q * s)]
    big = [(0.55, base), (0.55 + p * sb, base), (0.55, base - q * sb)]
    cv.polygon(small, color, fill=False)
    cv.polygon(big, color, fill=False)
    cv.text(((small[0][0] + small[1][0]) / 2, base + 0.08), str(p))
    cv.text((0.06, (small[0][1] + small[2][1]) / 2), str(q))
    cv.text(((big[0][0] + big[1][0]) / 2, base + 0.08), str(k * p))
    cv.text((0.49, (big[0][1] + big[2][1]) / 2), "x")
    return "The two right triangles are similar. Find x."


def _products() -> list[str]:
    return sorted({str(a * b) for a in range(2, 10) for b in range(2, 10)}, key=int)


Family = Callable[[random.Random, str, Canvas], str]
# name -> (level, task, answer space, builder)
FAMILIES: dict[str, tuple[int, str, list[str], Family]] = {
    "shape_color": (0, "mcq", LETTERS4, shape_color),
    "largest_shape": (1, "mcq", LETTERS4, largest_shape),
    "longest_segment": (1, "mcq", LETTERS4, longest_segment),
    "count_sides": (1, "geometry", ["3", "4", "5", "6"], count_sides),
    "count_points": (1, "geometry", ["2", "3", "4", "5"], count_points),
    "angle_measure": (2, "geometry", ["30", "45", "60", "90", "120", "150"], angle_measure),
    "right_angle": (2, "mcq", LETTERS4, right_angle),
    "triangle_angle": (3, "geometry", [str(x) for x in range(20, 130, 10)], triangle_angle),
    "parallel_lines": (3, "geometry", [str(x) for x in range(40, 150, 10)], parallel_lines),
    "rectangle_area": (3, "geometry", _products(), rectangle_area),
    "circle_area": (3, "geometry", [str(r * r) for r in range(2, 10)], circle_area),
    "similar_triangles": (3, "geometry", [str(x) for x in sorted({k * q for k in (2, 3) for q in range(2, 7)})], similar_triangles),
}
ANSWER_SPACE: dict[str, list[str]] = {name: spec[2] for name, spec in FAMILIES.items()}
CHOICE_TEXT: dict[str, list[str]] = {"shape_color": COLOR_CHOICES}  # mcq families whose options are not bare letters



def generate(n: int, seed: int = 0, levels: Sequence[int] = (1, 2, 3)) -> list[Problem]:
    """n problems, deterministic per seed: level uniform over `levels`, family uniform within a level,
    answer uniform over the family's answer space; figures are unique."""
    by_level = {lvl: [f for f, spec in FAMILIES.items() if spec[0] == lvl] for lvl in sorted(set(levels))}
    bad = [lvl for lvl, fams in by_level.items() if not fams]
    if bad:
        raise ValueError(f"unknown levels {bad}; available: {sorted({s[0] for s in FAMILIES.values()})}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Problem] = []
    while len(out) < n:
        level = rng.choice(list(by_level))
        family = rng.choice(by_level[level])
        _, task, space, build = FAMILIES[family]
        answer = rng.choice(space)
        cv = Canvas()
        question = build(rng, answer, cv)
        key = family + cv.key()
        if key in seen:
            continue
        seen.add(key)
        choices = list(CHOICE_TEXT.get(family, LETTERS4)) if task == "mcq" else None
        out.append(Problem(family, level, task, question, answer, choices, cv))
    return out


def render(problem: Problem, size: int = 112) -> Image.Image:
    """Draw the problem's figure as a size x size RGB image."""
    S = size * SUPERSAMPLE
    img = Image.new("RGB", (S, S), "white")
    d = ImageDraw.Draw(img)
    width = max(SUPERSAMPLE, round(S * 0.022))
    font = ImageFont.load_default(size=max(8, round(S * 0.1)))

    def px(p):
        return (p[0] * S, p[1] * S)

    for op in problem.canvas.ops:
        kind = op[0]
        if kind == "line":
            d.line([px(op[1]), px(op[2])], fill=op[3], width=width)
        elif kind == "polygon":
            pts = [px(p) for p in op[1]]
            if op[3]:
                d.polygon(pts, fill=op[2])
            else:
                d.line(pts + [pts[0]], fill=op[2], width=width, joint="curve")
        elif kind == "circle":
            (cx, cy), r = px(op[1]), op[2] * S
            box = [cx - r, cy - r, cx + r, cy + r]
            d.ellipse(box, fill=op[3]) if op[4] else d.ellipse(box, outline=op[3], width=width)
        elif kind == "arc":
            (cx, cy), r = px(op[1]), op[2] * S
            d.arc([cx - r, cy - r, cx + r, cy + r], -op[4], -op[3], fill=op[5], width=max(1, width // 2))
        elif kind == "text":
            d.text(px(op[1]), op[2], fill=op[3], font=font, anchor="mm")
    return img.resize((size, size), Image.Resampling.LANCZOS)


def to_record(problem: Problem, rid: str, image_path: str) -> dict:
    return {
        "id": rid, "task": problem.task, "prompt": "<image>" + problem.question, "images": [image_path],
        "answer": problem.answer, "choices": problem.choices, "tests": None,
        "meta": {"source": "synthetic-geometry", "family": problem.family, "level": problem.level},
    }


def make_geometry(out: str | os.PathLike, n: int = 2000, seed: int = 0, test_fraction: float = 0.1,
                  size: int = 112, levels: Sequence[int] = (1, 2, 3)) -> dict[str, int]:
    """Write out/train.jsonl, out/test.jsonl and out/images/*.png; returns record counts per split."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if size < 28:
        raise ValueError(f"size must be >= 28 px, got {size}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    problems = generate(n, seed, levels)
    n_test = max(1, round(n * test_fraction)) if n > 1 else 0
    splits = {"train": problems[: n - n_test], "test": problems[n - n_test:]}
    counts = {}
    for split, items in splits.items():
        tmp = out / f".{split}.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for i, p in enumerate(items):
                rid = f"geo-s{seed}-{split}-{i:05d}"
                rel = f"images/{rid}.png"
                render(p, size).save(out / rel, format="PNG")
                f.write(json.dumps(to_record(p, rid, rel), ensure_ascii=False) + "\n")
        os.replace(tmp, out / f"{split}.jsonl")
        counts[split] = len(items)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="riskpo-mm make-geometry", description="Render the synthetic geometry VQA set.")
    ap.add_argument("--n", type=int, default=2000, help="records in total (train + test)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output folder (train.jsonl, test.jsonl, images/)")
    ap.add_argument("--test-fraction", type=float, default=0.1)
    ap.add_argument("--size", type=int, default=112, help="image side in pixels")
    ap.add_argument("--levels", default="1,2,3", help="comma-separated difficulty levels out of 0,1,2,3 (0: shape colour, the CPU demo warm-up)")
    args = ap.parse_args(argv)
    try:
        levels = [int(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--levels: expected comma-separated integers such as 1,2,3, got {args.levels!r}")
    if args.n < 2:
        ap.error("--n must be >= 2 (one train and one test record)")
    try:
        counts = make_geometry(args.out, args.n, args.seed, args.test_fraction, args.size, levels)
    except ValueError as e:
        ap.error(str(e))
    print(f"wrote {counts['train']} train + {counts['test']} test records to {args.out}")
    return 0
