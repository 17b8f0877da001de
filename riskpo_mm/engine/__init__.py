"""Local training engine (HF generate + OpenRLHF Actor/DeepSpeed) and the `train` command."""
