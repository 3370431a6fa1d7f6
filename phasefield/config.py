"""Config schemas and validation: every value is checked before any compute.

A schema is a dataclass whose fields are declared with :func:`option` (default, allowed
range or choices, help). :func:`validate` turns a plain dict (Hydra's resolved config)
into schema instances and raises :class:`ConfigError` naming the key, the value and what
is allowed; the CLI prints that message without a traceback.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

import jax


class ConfigError(ValueError):
    """A user error in the configuration: ``key``, ``value`` and what is ``allowed``."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"invalid config: {key} = {value!r}; allowed: {allowed}")


def option(default, *, help: str, min=None, max=None, exclusive: bool = False, choices=None, static=None):
    """A schema field. ``min``/``max`` bound numbers (and list entries); ``exclusive`` makes ``min`` strict.

    ``static``: whether the value shapes the computation (grid, branches, array sizes) rather than
    entering it as a number. By default floats are parameters (pytree leaves: swept by ``vmap``,
    differentiable) and everything else is static; ``static=True`` marks a float that sets the grid
    or an index, ``static=False`` an integer that is only a number (a seed).
    """
    meta = {"help": help, "min": min, "max": max, "exclusive": exclusive, "choices": choices, "static": static}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


def _describe_range(meta) -> str:
    if meta.get("choices") is not None:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    parts = []
    if meta.get("min") is not None:
        parts.append(f"{'>' if meta['exclusive'] else '>='} {meta['min']}")
    if meta.get("max") is not None:
        parts.append(f"<= {meta['max']}")
    return " and ".join(parts) or "any value"


def _check_scalar(key, value, kind, meta):
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, value, f"an integer {_describe_range(meta)}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, value, f"a number {_describe_range(meta)}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(key, value, f"a finite number {_describe_range(meta)}")
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, f"a string, {_describe_range(meta)}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(key, value, _describe_range(meta))
    low, high = meta.get("min"), meta.get("max")
    if low is not None and (value < low or (meta["exclusive"] and value == low)):
        raise ConfigError(key, value, _describe_range(meta))
    if high is not None and value > high:
        raise ConfigError(key, value, _describe_range(meta))
    return value


def _check_list(key, value, item, meta):
    """A non-empty list of scalars, or a (possibly empty) list of such lists (``list[list[float]]``)."""
    nested = typing.get_origin(item) is list
    if not isinstance(value, (list, tuple)) or (not value and not nested):
        kind = "list of lists" if nested else f"non-empty list of {item.__name__}"
        raise ConfigError(key, value, f"a {kind}")
    if nested:
        return [_check_list(f"{key}[{i}]", v, typing.get_args(item)[0], meta) for i, v in enumerate(value)]
    return [_check_scalar(f"{key}[{i}]", v, item, meta) for i, v in enumerate(value)]


def validate(schema, data, prefix: str):
    """Build ``schema`` from ``data`` (a dict), checking keys, types and ranges."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(prefix, data, f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(schema))}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}", data[unknown[0]], f"a known key of {prefix}: {', '.join(fields)}")
    hints = typing.get_type_hints(schema)
    values = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key, value, kind = f"{prefix}.{name}", data[name], hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = validate(kind, value, key)
        elif typing.get_origin(kind) is list:
            values[name] = _check_list(key, value, typing.get_args(kind)[0], f.metadata)
        else:
            values[name] = _check_scalar(key, value, kind, f.metadata)
    instance = schema(**values)
    if hasattr(instance, "check"):
        instance.check(prefix)
    return instance


def _frozen(value):
    """Lists as (nested) tuples: static options are part of a pytree's structure and must hash."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def is_parameter(schema_field: dataclasses.Field, kind) -> bool:
    """Whether an option is a pytree leaf (a number the model computes with) rather than static."""
    static = schema_field.metadata.get("static")
    if static is None:
        return kind is float
    return not static


def parameter_names(schema) -> list[str]:
    """The options of ``schema`` that are pytree leaves (what ``vmap``, ``grad`` and batches can vary)."""
    hints = typing.get_type_hints(schema)
    return [f.name for f in dataclasses.fields(schema) if is_parameter(f, hints[f.name])]


def scenario_parameters(schema):
    """Class decorator: register a scenario schema as a pytree (JAX dataclass).

    Its parameters (:func:`is_parameter`) are the leaves; every other option is static structure
    (lists become tuples so that the structure hashes). A validated scenario config is therefore
    the model's parameter pytree: a batch stacks members' leaves and ``vmap``s over them, and
    ``jax.grad``/``jvp`` differentiate with respect to them.
    """
    data = parameter_names(schema)
    meta = [f.name for f in dataclasses.fields(schema) if f.name not in data]
    original_init = schema.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        for name in meta:
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    schema.__init__ = __init__
    jax.tree_util.register_dataclass(schema, data_fields=data, meta_fields=meta)
    return schema


@dataclass
class TimeSolverConfig:
    """``solver`` of models with their own fixed operator-split step: step size and its control."""

    dt: float = option(0.1, min=0.0, exclusive=True, help="time step (initial step when adaptive)")
    adaptive: bool = option(False, help="adapt dt to the change of the solution per step")
    dt_min: float = option(1e-8, min=0.0, exclusive=True, help="smallest adaptive dt")
    dt_max: float = option(10.0, min=0.0, exclusive=True, help="largest adaptive dt")
    target_change: float = option(0.01, min=0.0, exclusive=True, help="adaptive target of max |u_new - u| per step")
    reject_above: float = option(0.0, min=0.0, help="adaptive: a step whose change exceeds reject_above x "
                                 "target_change is taken again with a smaller dt (0: every step is kept; > 1)")
    precision: str = option("float64", choices=("float64",),
                            help="working precision (float64 only: Butler-Volmer exponentials, contrast 1e7)")

    def check(self, prefix: str):
        if self.adaptive and self.dt_min > self.dt_max:
            raise ConfigError(f"{prefix}.dt_min", self.dt_min, f"<= dt_max = {self.dt_max}")
        if 0.0 < self.reject_above <= 1.0:  # the controller aims at the target: a bound at it rejects every other step
            raise ConfigError(f"{prefix}.reject_above", self.reject_above, "0 (off) or > 1")


@dataclass
class DecomposedTimeSolverConfig(TimeSolverConfig):
    """``solver`` of models with their own step (:class:`TimeSolverConfig`) that may split one run over devices."""

    decomposition: str = option("none", choices=("none", "slabs"),
                                help="none: one device; slabs: the grid split along x over all devices "
                                     "(x cells divisible by the device count)")


@dataclass
class PrecisionTimeSolverConfig(DecomposedTimeSolverConfig):
    """``solver`` of models with their own step (:class:`DecomposedTimeSolverConfig`) that also run in float32."""

    precision: str = option("float64", choices=("float32", "float64"),
                            help="working precision of the fields (float32: see experiments/bench_precision.py)")


@dataclass
class SolverConfig(TimeSolverConfig):
    """``solver`` of the gradient-flow models: time scheme, step size, stabilisation and precision."""

    scheme: str = option("sbdf2", choices=("explicit", "imex1", "sbdf2"), help="time scheme")
    stabilization: float = option(0.0, min=0.0, help="stabilisation constant A of the semi-implicit schemes")
    precision: str = option("float64", choices=("float32", "float64"), help="working precision of the fields")
    decomposition: str = option("none", choices=("none", "slabs"),
                                help="none: one device; slabs: the grid split along x over all devices "
                                     "(x cells divisible by the device count)")


@dataclass
class OutputConfig:
    """``output``: what is written, and when (in simulated time)."""

    interval: float = option(10.0, min=0.0, exclusive=True, help="simulated time between field frames")
    scalar_interval: float = option(1.0, min=0.0, exclusive=True, help="simulated time between scalar records")
    fields: list[str] = option(lambda: ["all"], help="fields to store in /fields ('all' for every field)")
    compression: int = option(4, min=0, max=9, help="gzip level of /fields (0: none)")
    plots: bool = option(True, help="write PNGs of the last frame and the scalars")
    checkpoint_minutes: float = option(10.0, min=0.0, exclusive=True,
                                       help="wall-clock minutes between checkpoints (also at every frame)")

    def check(self, prefix: str):
        ratio = self.interval / self.scalar_interval
        if abs(ratio - round(ratio)) > 1e-9 * ratio or round(ratio) < 1:
            raise ConfigError(
                f"{prefix}.interval", self.interval, f"a whole multiple of scalar_interval = {self.scalar_interval}"
            )


@dataclass
class RunConfig:
    """The whole validated run: scenario (model-specific schema), solver, output."""

    scenario: Any
    solver: SolverConfig
    output: OutputConfig


def validate_run(data: dict) -> RunConfig:
    """Validate a resolved config dict: scenario, solver and output sections."""
    if not isinstance(data, dict):
        raise ConfigError("<root>", data, "a mapping")
    unknown = sorted(set(data) - {"scenario", "solver", "output"})
    if unknown:
        raise ConfigError(unknown[0], data[unknown[0]], "a known top-level key: scenario, solver, output")
    from phasefield.registry import scenario, scenario_names  # the registry loads the models on first use

    section = data.get("scenario") or {}
    name = section.get("name") if isinstance(section, dict) else None
    if name not in scenario_names():
        raise ConfigError("scenario.name", name, "one of " + ", ".join(repr(n) for n in scenario_names()))
    entry = scenario(name)
    return RunConfig(
        scenario=validate(entry.Config, section, "scenario"),
        solver=validate(entry.Solver, data.get("solver"), "solver"),
        output=validate(OutputConfig, data.get("output"), "output"),
    )
