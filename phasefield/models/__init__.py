"""Scenario models; importing this package imports every module in it, and each registers its scenario
(:mod:`phasefield.registry`): a new scenario is a new module here, nothing else to list."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
