"""The scenario registry: scenario name -> its config schema, solver schema and ``build``.

A model module registers itself with :func:`register_scenario`; :mod:`phasefield.models` imports
every model module, and the registry imports that package on first use, so neither ``config``
nor the runner imports a model. Adding a scenario is one module in ``models/`` (listed in
``models/__init__.py``), one YAML in ``configs/scenario/`` and its tests.
"""
from __future__ import annotations

import importlib
from typing import Callable, NamedTuple


class Scenario(NamedTuple):
    """A registered scenario.

    Config: its ``scenario`` schema (a dataclass of :func:`phasefield.config.option` fields,
            registered as a parameter pytree by :func:`phasefield.config.scenario_parameters`);
    Solver: the ``solver`` schema it accepts (options it has no use for are refused);
    build:  ``(config, solver) -> Simulation``.
    """

    name: str
    Config: type
    Solver: type
    build: Callable


_SCENARIOS: dict[str, Scenario] = {}


def register_scenario(name: str, config: type, solver: type):
    """Decorator of a model's ``build(config, solver) -> Simulation``: registers scenario ``name``."""

    def register(build: Callable) -> Callable:
        if name in _SCENARIOS and _SCENARIOS[name].build is not build:
            raise ValueError(f"scenario {name!r} is registered twice")
        _SCENARIOS[name] = Scenario(name, config, solver, build)
        return build

    return register


def _load():
    importlib.import_module("phasefield.models")


def scenario_names() -> list[str]:
    _load()
    return list(_SCENARIOS)


def scenario(name: str) -> Scenario:
    _load()
    return _SCENARIOS[name]
