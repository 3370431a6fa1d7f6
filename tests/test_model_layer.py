"""The model layer: no import cycles, parameters are pytree leaves (not constants baked into a model),
solver options are checked per scenario, and a batch runs over any parameter of every scenario."""
import ast
import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from phasefield.batch import run_batch
from phasefield.config import ConfigError, parameter_names, validate_run
from phasefield.io import read_run
from phasefield.registry import scenario as registered
from phasefield.registry import scenario_names
from phasefield.runner import abstract_carry, build, device_parameters, run

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "phasefield"

# small grids of each scenario family's YAML (the scenario YAML sets everything else)
SMALL = {
    "spinodal": ["scenario=spinodal", "scenario.shape=[16,16]"],
    "dendrite": ["scenario=dendrite", "scenario.size=[12,8]", "scenario.shape=[24,16]",
                 "scenario.electrode_position=3", "scenario.short_circuit_gap=3"],
    "dendrite_solid": ["scenario=dendrite_solid", "scenario.shape=[16,16]"],
    "swelling": ["scenario=swelling", "scenario.shape=[32,32]", "scenario.interface_thickness=0.4",
                 "scenario.gradient_length=0.15"],
    "fracture": ["scenario=fracture", "scenario.shape=[16,16]", "scenario.size=[16,16]", "scenario.notch_length=4"],
}


def composed(overrides):
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        data = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    return {k: data[k] for k in ("scenario", "solver", "output")}


def imports_of(path: Path) -> set[str]:
    """Every phasefield module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("phasefield"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("phasefield"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_package_has_no_import_cycles():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    # a package's __init__ importing its own submodules is how it re-exports them, not a cycle
    graph = {name: {m for m in deps if not m.startswith(name + ".")} for name, deps in graph.items()}
    state = {}

    def visit(name, stack):
        state[name] = "open"
        for dep in graph[name]:
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, stack + [dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert {"phasefield.config", "phasefield.runner", "phasefield.cli", "phasefield.batch"} <= set(graph)
    assert not any(m.startswith("phasefield.models") for m in graph["phasefield.config"])


def perturbed(value, key, base_dict):
    """A valid nearby value of parameter ``key`` (a float, or an int leaf such as a seed)."""
    candidates = ([value + 1] if isinstance(value, int) else
                  [value * 1.01, value * 0.99] if value != 0 else [0.01, -0.01, 1.0])
    for candidate in candidates:
        data = {**base_dict, "scenario": {**base_dict["scenario"], key: candidate}}
        try:
            validate_run(data)
            return data
        except ConfigError:
            continue
    return None


def traced(simulation, params):
    """The step and the diagnostics as jaxprs: what a compiled run executes, constants included."""
    carry = abstract_carry(simulation, params)
    step = jax.make_jaxpr(simulation.stepper.step)(params, carry, 0.01)
    diagnostics = jax.make_jaxpr(simulation.diagnostics)(params, carry)
    return [(str(j.jaxpr), [np.asarray(c) for c in j.consts]) for j in (step, diagnostics)]


@pytest.mark.parametrize("family", sorted(SMALL))
def test_every_parameter_is_a_leaf_of_one_compiled_model(family):
    """A model built with every parameter changed (each to a valid nearby value) traces to the same step
    and diagnostics (same program, same constants) as the base model: the values enter only through
    ``params``. A number closed over at build time would change a constant (and a batch over it would
    silently run every member with the base value); on a mismatch the culprits are named one by one."""
    base_dict = composed(SMALL[family])
    base = build(validate_run(base_dict))
    reference = traced(base, device_parameters(base.parameters, "float64"))
    names = parameter_names(registered(family).Config)
    assert names, family
    changed, data = [], base_dict
    for name in names:
        candidate = perturbed(getattr(base.parameters, name), name, data)
        if candidate is not None:
            changed, data = changed + [name], candidate
    assert len(changed) >= len(names) - 2, sorted(set(names) - set(changed))

    def same(data):
        other = build(validate_run(data))
        assert jax.tree_util.tree_structure(other.parameters) == jax.tree_util.tree_structure(base.parameters)
        again = traced(other, device_parameters(other.parameters, "float64"))
        return all(text == text_again and len(consts) == len(consts_again)
                   and all(np.array_equal(a, b) for a, b in zip(consts, consts_again))
                   for (text, consts), (text_again, consts_again) in zip(reference, again))

    if not same(data):
        baked = [name for name in changed if not same(perturbed(getattr(base.parameters, name), name, base_dict))]
        pytest.fail(f"{family}: parameters closed over at build time: {', '.join(f'scenario.{n}' for n in baked)}")


@pytest.mark.parametrize("family,key,values", [
    ("spinodal", "scenario.kappa", [1.5, 2.5]),
    ("dendrite", "scenario.voltage", [-0.3, -0.45]),
    # the batched chunks of the mechanics models compile for about 20 s each: slow (the suite's budget)
    pytest.param("dendrite_solid", "scenario.stack_pressure", [0.0, 20.0], marks=pytest.mark.slow),
    pytest.param("swelling", "scenario.c_rate", [1.0, 2.0], marks=pytest.mark.slow),
])
def test_batch_runs_every_scenario(tmp_path, monkeypatch, family, key, values):
    """Each family's vmapped batch runs its members with their own parameter value. The batch's memory
    check (an ahead-of-time compile of the single-member chunk, ~20 s for dendrite_solid) is left out here:
    it is what every run() does, and test_batch checks it counts every member of a batch."""
    import phasefield.batch

    monkeypatch.setattr(phasefield.batch, "check_memory", lambda *args, **kwargs: None)
    data = composed(SMALL[family] + ["output.plots=false"])
    data["scenario"]["t_end"] = {"spinodal": 2.0, "dendrite": 0.1, "dendrite_solid": 0.1, "swelling": 30.0}[family]
    data["output"]["interval"] = data["output"]["scalar_interval"] = data["scenario"]["t_end"]
    runs = [read_run(p) for p in run_batch(data, key, values, tmp_path)]
    assert all(r["attrs"]["status"] == "finished" for r in runs)
    first = next(iter(runs[0]["fields"]))
    assert not np.array_equal(runs[0]["fields"][first][-1], runs[1]["fields"][first][-1])
    if family == "dendrite_solid":  # the 20 MPa member's metal carries the stack pressure
        assert runs[1]["scalars"]["metal_pressure_max"][-1] > 0


@pytest.mark.parametrize("family", sorted(SMALL))
def test_solver_options_a_scenario_has_no_use_for_are_refused(family):
    data = composed(SMALL[family])
    accepted = {f.name for f in dataclasses.fields(registered(family).Solver)}
    if "scheme" in accepted:
        validate_run({**data, "solver": {**data["solver"], "scheme": "imex1"}})
        return
    with pytest.raises(ConfigError, match=r"solver\.scheme.*a known key of solver"):
        validate_run({**data, "solver": {**data["solver"], "scheme": "sbdf2"}})


def test_every_registered_scenario_has_a_yaml():
    """configs/scenario/<name>.yaml composes to scenario <name> (composing only the registered names' own YAMLs:
    10 of the 20, about 0.5 s each)."""
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        for name in scenario_names():
            assert (ROOT / "configs" / "scenario" / f"{name}.yaml").is_file(), name
            assert compose("config", overrides=[f"scenario={name}"]).scenario.name == name


def test_runs_of_one_structure_share_one_traced_and_compiled_chunk(tmp_path, caplog, monkeypatch):
    """A run after another of the same structure (another parameter value, dt, record interval and t_end: a
    multirun sweep in one process) traces and compiles no chunk of steps of its own, and writes bit for bit
    what it writes with nothing shared; with nothing shared, a run compiles its chunk once."""
    import logging

    import phasefield.runner as runner

    monkeypatch.setattr(runner, "_shared_steps", {})
    base = composed(SMALL["spinodal"] + ["output.plots=false"])
    first = {**base, "scenario": {**base["scenario"], "t_end": 2.0}}
    second = {**base, "scenario": {**base["scenario"], "t_end": 3.0, "kappa": 1.5},
              "solver": {**base["solver"], "dt": 0.5 * base["solver"]["dt"]},
              "output": {**base["output"], "interval": 1.5, "scalar_interval": 0.5}}
    run(first, tmp_path / "first")
    with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax"):
        shared = read_run(run(second, tmp_path / "shared"))
    assert not [m for m in caplog.messages if "advance_compiled" in m], caplog.messages
    monkeypatch.setattr(runner, "_shared_steps", {})
    caplog.clear()
    with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax"):
        alone = read_run(run(second, tmp_path / "alone"))
    # compiled once: the memory check before the run measures the program the run then calls
    assert len([m for m in caplog.messages if m.startswith("Finished XLA compilation of jit(advance_compiled)")]) == 1
    assert shared["time"][-1] == 3.0 and np.array_equal(shared["time"], alone["time"])
    for name in alone["fields"]:
        np.testing.assert_array_equal(shared["fields"][name], alone["fields"][name])
    for name in alone["scalars"]:
        np.testing.assert_array_equal(shared["scalars"][name], alone["scalars"][name])
