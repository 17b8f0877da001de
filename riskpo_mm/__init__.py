"""riskpo-mm: RiskPO (Mixed-VaR over question bundles) for vision-language RL on OpenRLHF."""

__version__ = "0.1.0"
