"""`riskpo-mm eval` on a run's model takes the run's settings; every default is in --help; clear errors
for text-only models on image records and missing folders; the documented commands match the demo."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from riskpo_mm.cli import main as cli_main
from riskpo_mm.eval.cli import build_parser, main as eval_main
from eval_helpers import geometry_test_file, tiny_model_dir

REPO = Path(__file__).resolve().parents[1]


def _run_folder(tmp_path, model_dir) -> Path:
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    (run / "final_model").symlink_to(model_dir, target_is_directory=True)
    (run / "config.yaml").write_text(yaml.safe_dump({
        "name": "mine", "rollout": {"max_new_tokens": 6}, "eval": {"temperature": 0.7, "max_new_tokens": None},
        "data": {"min_pixels": 3136, "max_pixels": 12544, "system_prompt": "Answer briefly."}}))
    return run


def test_eval_of_a_runs_model_takes_max_tokens_temperature_pixels_and_system_prompt_from_its_config(
        tmp_path_factory, tmp_path, capsys):
    run = _run_folder(tmp_path, tiny_model_dir(tmp_path_factory))
    data = geometry_test_file(tmp_path_factory)
    out = tmp_path / "r.json"
    common = ["--model", str(run / "final_model"), "--data", str(data), "--n", "1", "--k", "1", "--max-problems", "2"]
    assert eval_main([*common, "--out", str(out)]) == 0
    config = json.loads(out.read_text())["config"]
    assert (config["max_new_tokens"], config["temperature"], config["max_pixels"]) == (6, 0.7, 12544)
    err = capsys.readouterr().err
    assert f"from the run's {run / 'config.yaml'}: max_new_tokens 6 (rollout.max_new_tokens)" in err
    assert "system_prompt 'Answer briefly.' (data.system_prompt)" in err
    assert eval_main([*common, "--temperature", "0.9", "--out", str(out)]) == 0  # a flag given wins
    assert json.loads(out.read_text())["config"]["temperature"] == 0.9


def test_eval_help_shows_every_default():
    parser = build_parser()
    for action in parser._actions:
        if action.required or action.dest == "help":
            continue
        rendered = parser.formatter_class(prog="x")._get_help_string(action) if action.help else ""
        assert "default" in rendered, action.dest
    text = parser.format_help()
    assert "else 512" in text and "else 0.6" in text


def test_text_only_model_on_image_records_is_one_clear_error_and_the_family_is_spelled_qwen2(
        tmp_path_factory, tmp_path, capsys):
    model = tmp_path / "text_model"
    assert cli_main(["make-tiny-model", "--family", "qwen2", "--size", "xs", "--out", str(model)]) == 0
    assert json.loads((model / "config.json").read_text())["model_type"] == "qwen2"
    data = geometry_test_file(tmp_path_factory)
    capsys.readouterr()
    assert eval_main(["--model", str(model), "--data", str(data), "--n", "1", "--k", "1", "--out",
                      str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a text-only model (model_type 'qwen2')" in err[0] and "have images" in err[0]


def test_eval_names_a_missing_model_folder(tmp_path, capsys):
    assert eval_main(["--model", str(tmp_path / "nope"), "--data", "x.jsonl", "--out", "r.json"]) == 2
    assert f"--model: the folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err


def test_readme_eval_example_and_notebook_default_data_are_what_the_demo_writes():
    demo = yaml.safe_load((REPO / "configs" / "demo" / "geometry_tiny_cpu.yaml").read_text())
    test_file = f"{demo['data']['synthetic']['dir']}/test.jsonl"
    final_model = f"runs/{demo['name']}/final_model"
    readme = (REPO / "README.md").read_text()
    command = re.search(r"riskpo-mm eval (.*?)\n(?!\s+--)", readme.replace("\\\n", " "), re.S).group(1)
    args = build_parser().parse_args(shlex.split(command))
    assert args.data == [test_file] and args.model == final_model
    nb = json.loads((REPO / "notebooks" / "geometry_vqa_eval.ipynb").read_text())
    source = "".join(nb["cells"][0]["source"]) if nb["cells"][0]["cell_type"] == "code" else \
        next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert f'"RISKPO_NB_DATA", "{test_file}"' in source


def test_riskpo_mm_version(capsys):
    assert cli_main(["--version"]) == 0
    assert re.fullmatch(r"riskpo-mm \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)
