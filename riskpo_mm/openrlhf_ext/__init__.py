"""Everything that imports OpenRLHF: RiskPO experience maker, loss, Ray trainer/actor subclasses,
the ``train_ray`` entry point with its ``--riskpo.*`` flags, and the CPU compatibility layer.

Submodules are imported on demand; importing this package imports nothing from OpenRLHF.
"""
