"""Generation of responses, below the engine, the evaluation harness and the SFT warm start.

- `generation.batch`: `RolloutBatch` (the sampled responses of P prompts x n samples, as both backends
  return them) and the model-family / processor helpers every prompt encoder shares;
- `generation.hf`: `generate_rollouts`, sampling with HF `generate`;
- `generation.vllm`: `VLLMRollout`, a vLLM engine in this process (the local trainer's rollout
  backend and the `--engine vllm` evaluation sampler);
- `generation.settings`: what a run config asks of them (reward weights, code-sandbox limits, the
  evaluation keywords).

Layering (tests/test_layering.py): this package imports config, data, models and rewards, never
engine, eval or openrlhf_ext; eval imports it and never engine; engine imports both.
"""
