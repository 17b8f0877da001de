"""Synthetic geometry VQA: deterministic, unique figures, verifiable answers, image required."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from riskpo_mm.data import load_records
from riskpo_mm.data.synthetic import ANSWER_SPACE, CHOICE_TEXT, FAMILIES, generate, main, render

ALL_LEVELS = [0, 1, 2, 3]

# A text-only oracle may beat uniform chance by at most this much (accuracy points).
ORACLE_MARGIN = 0.05


def _text_view(p) -> str:
    """Everything a text-only solver sees: task, prompt, choices and meta (no image)."""
    return json.dumps([p.task, p.question, p.choices, p.family, p.level])


def text_only_oracle_margin(n: int = 6000, seed: int = 0) -> tuple[float, float]:
    """(oracle accuracy, chance accuracy) on a held-out half: the oracle answers with the most frequent
    training answer of records with the same text view; chance guesses uniformly in the family's space."""
    probs = generate(n, seed, levels=ALL_LEVELS)
    train, test = probs[: n // 2], probs[n // 2:]
    by_view: dict[str, Counter] = defaultdict(Counter)
    for p in train:
        by_view[_text_view(p)][p.answer] += 1
    hits = sum(by_view[_text_view(p)].most_common(1)[0][0] == p.answer for p in test if by_view[_text_view(p)])
    chance = sum(1 / len(ANSWER_SPACE[p.family]) for p in test)
    return hits / len(test), chance / len(test)


def test_text_only_oracle_cannot_beat_chance_by_more_than_the_margin():
    oracle, chance = text_only_oracle_margin()
    assert oracle - chance <= ORACLE_MARGIN, (oracle, chance)


def test_every_family_and_level_appears_with_answers_in_its_space():
    probs = generate(800, seed=3, levels=ALL_LEVELS)
    assert {p.family for p in probs} == set(FAMILIES)
    assert {p.level for p in probs} == set(ALL_LEVELS)
    for p in probs:
        assert p.answer in ANSWER_SPACE[p.family] and p.level == FAMILIES[p.family][0]
        assert (p.choices == CHOICE_TEXT.get(p.family, ["A", "B", "C", "D"])) == (p.task == "mcq")
    assert {p.level for p in generate(50, seed=3, levels=[1])} == {1}


def test_shape_color_answer_is_the_colour_of_the_shape():
    probs = [p for p in generate(80, seed=5, levels=[0])][:20]
    assert {p.family for p in probs} == {"shape_color"}
    for p in probs:
        rgb = np.asarray(render(p, 112), dtype=np.int32).reshape(-1, 3)
        ink = rgb[(rgb.max(1) - rgb.min(1)) > 60]  # coloured pixels (no white, grey or black)
        named = {"red": (200, 30, 30), "blue": (30, 70, 200), "green": (20, 130, 40), "purple": (150, 40, 160)}
        dist = {name: np.abs(ink - np.array(c)).sum(1).mean() for name, c in named.items()}
        assert min(dist, key=dist.get) == p.choices["ABCD".index(p.answer)]


def test_largest_shape_answer_is_the_quadrant_with_most_ink():
    probs = [p for p in generate(300, seed=4, levels=[1]) if p.family == "largest_shape"][:20]
    for p in probs:
        ink = 255 - np.asarray(render(p, 112).convert("L"), dtype=np.float32)
        h = 56
        cells = [ink[y:y + h, x:x + h].sum() for x, y in ((0, 0), (h, 0), (0, h), (h, h))]
        assert "ABCD"[int(np.argmax(cells))] == p.answer


def _digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_make_geometry_is_deterministic_and_train_test_share_no_figure(tmp_path):
    args = ["--n", "40", "--seed", "7", "--test-fraction", "0.25", "--size", "112"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    train, test = load_records(tmp_path / "a" / "train.jsonl"), load_records(tmp_path / "a" / "test.jsonl")
    assert (len(train), len(test)) == (30, 10)
    pixels = lambda recs: {hashlib.sha1(open(r.images[0], "rb").read()).hexdigest() for r in recs}
    assert not pixels(train) & pixels(test)
    assert all(r.meta["level"] in (1, 2, 3) and r.prompt.startswith("<image>") for r in train)
    from PIL import Image

    assert Image.open(train[0].images[0]).size == (112, 112)
    assert main(args[:2] + ["--seed", "8", "--out", str(tmp_path / "c")]) == 0
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_make_geometry_rejects_unknown_levels(tmp_path):
    with pytest.raises(SystemExit):
        main(["--n", "4", "--levels", "1,5", "--out", str(tmp_path)])
