"""One run split over devices (``solver.decomposition=slabs``), on 4 forced CPU devices in a subprocess.

The slab transforms of :class:`SpectralBasis` are checked against the one-device transforms (the same
class without slabs) and against their own inverse; the decomposed spinodal run against the one-device
run, 100 steps of each scheme in 2D and 3D; the decomposed dendrite (held voltage, noise on) against the
one-device run and the one-device run's own sensitivity to 1 ulp; the compiled steps are read for their
collectives. The same dendrite with electronic leakage is its own subprocess, marked slow. In a second subprocess: the elasticity CG's slab preconditioner against the one-device one, and the
decomposed swelling run (and, marked slow, dendrite_solid) against the one-device run and its 1-ulp sensitivity.
In a third: PFHub 3a and 7 (the scenarios with their own steps) against the one-device runs; in a fourth, the
potential solve's multigrid with its coarse levels agglomerated against the one-device solve.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phasefield.config import ConfigError, validate_run

ROOT = Path(__file__).resolve().parents[1]

# the dendrite case of the subprocesses below: 16 x 8 cells split into 4 slabs of 4 rows, 10 steps compiled once
DENDRITE_SETUP = r"""
DENDRITE = {"name": "dendrite", "size": [4.0, 2.0], "shape": [16, 8], "electrode_position": 1.0,
            "short_circuit_gap": 1.0, "nuclei": [[1.0, 1.0]], "voltage": -0.2, "noise_amplitude": 0.5}

def dendrite(decomposition, steps=10, dt=0.02, **extra):
    simulation = build(validate_run({"scenario": {**DENDRITE, **extra},
                                     "solver": {"dt": dt, "decomposition": decomposition}}))
    params = device_parameters(simulation.parameters, "float64")
    carry = initial_carry(simulation, params)
    advance = jax.jit(lambda c: jax.lax.fori_loop(0, steps, lambda i, c: simulation.stepper.step(params, c, dt), c))
    return simulation, params, carry, advance.lower(carry).compile()
"""

SCRIPT = r"""
import json, re, sys
import jax, jax.numpy as jnp, numpy as np
import phasefield
from phasefield.config import ConfigError, validate_run
from phasefield.decomposition import Slabs, collective_bytes, collectives
from phasefield.grid import Boundary, Grid
from phasefield.operators import SpectralBasis
from phasefield.runner import build, device_parameters, initial_carry

assert jax.device_count() == 4
slabs, out = Slabs(), {"transforms": {}, "runs": {}}
rng = np.random.default_rng(7)
for shape, kinds in (((8, 12, 6), ("periodic",) * 3), ((8, 10, 4), ("dirichlet", "periodic", "neumann"))):
    grid, boundary = Grid(shape, 1.0), Boundary.per_axis(kinds)
    one, split = SpectralBasis(grid, boundary), SpectralBasis(grid, boundary, slabs=slabs)
    u = rng.standard_normal(shape)
    reference = np.asarray(jax.jit(one.forward)(u))
    coefficients = jax.jit(split.forward)(jax.device_put(u, slabs.sharding(len(shape))))
    back = jax.jit(split.inverse)(coefficients)
    padded = np.asarray(coefficients)
    kept = padded[:, :reference.shape[1]]
    out["transforms"][f"{shape} {kinds}"] = {
        "forward": float(np.abs(kept - reference).max() / np.abs(reference).max()),
        "padding": float(np.abs(padded[:, reference.shape[1]:]).max(initial=0.0)),
        "round_trip": float(np.abs(np.asarray(back) - u).max()),
        "layout": [list(coefficients.sharding.spec), list(back.sharding.spec)],
        "symbol_shape": list(split.laplacian_symbol.shape), "coefficient_shape": list(padded.shape),
    }

from phasefield.physics.electrodeposition import electrode_connected
out["connected"] = {}
for shape in ((16, 10), (8, 6, 5)):  # y not a multiple of the devices: padded in the transposed layout
    noise = rng.standard_normal(shape)
    for axis in range(len(shape)):
        noise = noise + np.roll(noise, 1, axis) + np.roll(noise, -1, axis)
    xi = 1.0 / (1.0 + np.exp(-2.0 * noise / noise.std()))
    one = np.asarray(jax.jit(lambda u: electrode_connected(u, 0.7))(xi))
    split = jax.jit(lambda u: electrode_connected(u, 0.7, slabs))(jax.device_put(xi, slabs.sharding(len(shape))))
    out["connected"][str(shape)] = {"equal": bool((np.asarray(split) == one).all()), "joined": int(one.sum()),
                                    "inside": int((xi > 0.7).sum()), "layout": list(split.sharding.spec)}

def stepped(variant, shape, scheme, dt, decomposition, steps=100):
    config = validate_run({"scenario": {"name": "spinodal", "variant": variant, "shape": shape},
                           "solver": {"scheme": scheme, "dt": dt, "decomposition": decomposition}})
    simulation = build(config)
    params = device_parameters(simulation.parameters, "float64")
    carry = initial_carry(simulation, params)
    advance = jax.jit(lambda p, c: jax.lax.fori_loop(0, steps, lambda i, c: simulation.stepper.step(p, c, dt), c))
    compiled = advance.lower(params, carry).compile()  # once: run and read
    return compiled(params, carry)["state"]["c"], carry["state"]["c"], compiled.as_text()

for variant, shape, scheme, dt in (("a", [32, 24], "explicit", 0.0025), ("a", [32, 24], "sbdf2", 0.1),
                                   ("cube", [8, 8, 8], "explicit", 0.0012), ("cube", [8, 8, 8], "sbdf2", 0.1)):
    one, start, _ = stepped(variant, shape, scheme, dt, "none")
    split, _, hlo = stepped(variant, shape, scheme, dt, "slabs")
    out["runs"][f"{variant} {scheme}"] = {
        "difference": float(jnp.max(jnp.abs(split - one)) / jnp.max(jnp.abs(one))),
        "change": float(jnp.max(jnp.abs(one - start))), "layout": list(split.sharding.spec),
        "collectives": collectives(hlo), "bytes": collective_bytes(hlo)}

# dendrite (reaction formulation, held voltage, noise on): 10 steps on 1 device, on 4 devices and from a start 1 ulp
# off on 1 device; then 10 more on 1 device from the first 10 and from the 4-device state restored there
# (checkpoint_part/restore_carry)
from phasefield.physics.electrodeposition import langevin_kick
from phasefield.runner import checkpoint_part, restore_carry
""" + DENDRITE_SETUP + r"""
one_simulation, one_params, start, one = dendrite("none")
_, _, split_start, split = dendrite("slabs")
halfway, split_halfway = one(start), split(split_start)
runs = {"split": (split_halfway, halfway), "resumed": (one(restore_carry(one_simulation, one_params, jax.tree.map(
            np.asarray, checkpoint_part(split_halfway)))), one(halfway)),
        "ulp": (one({**start, "state": {**start["state"], "xi": jnp.nextafter(start["state"]["xi"], 2.0)}}), halfway)}
hlo = split.as_text()
gathered = re.findall(r"= \w+\[([\d,]*)\]\S* all-gather(?:-start)?\(.*potential_solve", hlo)
out["dendrite"] = {
    "difference": {run: {name: float(jnp.max(jnp.abs(carry["state"][name] - reference["state"][name]))
                                      / jnp.max(jnp.abs(reference["state"][name]))) for name in ("xi", "c", "phi")}
                   for run, (carry, reference) in runs.items()},
    "change": float(jnp.max(jnp.abs(halfway["state"]["xi"] - start["state"]["xi"]))),
    "layout": [list(split_halfway["state"][name].sharding.spec) for name in ("xi", "c", "phi")],
    "collectives": collectives(hlo), "gathered": gathered,
    # every all-to-all's op_name ("" without one: a transpose the check must see too)
    "transposed": [(re.search(r"op_name=\"([^\"]*)\"", line) or [None, ""])[1] for line in hlo.splitlines()
                   if re.search(r"all-to-all(?:-start)?\(", line)]}
# the noise: one draw per global cell, the same on 1 and 4 devices, whatever jax_threefry_partitionable says
xi = np.asarray(start["state"]["xi"])
key = jax.random.PRNGKey(3)
jax.config.update("jax_threefry_partitionable", False)
kick = jax.jit(lambda u: langevin_kick(u, u, 1.0, (1.0, key)))
on_one, on_four = np.asarray(kick(xi)), kick(jax.device_put(xi, slabs.sharding(2)))
jax.config.update("jax_threefry_partitionable", True)
expected = xi + np.asarray(jax.random.normal(key, xi.shape)) * 16.0 * (xi * (1.0 - xi)) ** 2
out["noise"] = {"devices": float(np.abs(np.asarray(on_four) - on_one).max()), "layout": list(on_four.sharding.spec),
                "expected": float(np.abs(on_one - expected).max()), "size": float(np.abs(on_one - xi).max())}
try:
    build(validate_run({"scenario": {"name": "spinodal", "shape": [30, 32]}, "solver": {"decomposition": "slabs"}}))
except ConfigError as error:
    out["refused"] = str(error)
from phasefield.runner import run
run(json.loads(sys.argv[2]), sys.argv[1])  # to t = 1, resumed on one device by the test
print(json.dumps(out))
"""
# with electronic leakage (the metal's own potential phi_s, solved in every Newton iteration of the balanced step):
# 1 against 4 devices; its two compiles take about 40 s on 2 cores, so the check is in the slow tier
LEAKY_SCRIPT = r"""
import json
import jax, jax.numpy as jnp
import phasefield
from phasefield.config import validate_run
from phasefield.runner import build, device_parameters, initial_carry

assert jax.device_count() == 4
""" + DENDRITE_SETUP + r"""
leaky = [dendrite(decomposition, electronic_conductivity=1e-3) for decomposition in ("none", "slabs")]
leaky_one, leaky_split = leaky[0][3](leaky[0][2]), leaky[1][3](leaky[1][2])
out = {name: float(jnp.max(jnp.abs(leaky_split["state"][name] - leaky_one["state"][name]))
                   / jnp.max(jnp.abs(leaky_one["state"][name]))) for name in ("xi", "c", "phi", "phi_s")}
out["change"] = float(jnp.max(jnp.abs(leaky_one["state"]["xi"] - leaky[0][2]["state"]["xi"])))
print(json.dumps(out))
"""

# 2D periodic SBDF2 split over 4 devices: coefficients 16 x 7 padded to 16 x 8 in the checkpoint
RUN = {"scenario": {"name": "spinodal", "variant": "a", "shape": [16, 12], "t_end": 1.0},
       "solver": {"scheme": "sbdf2", "dt": 0.05, "adaptive": True, "decomposition": "slabs"},
       "output": {"interval": 0.5, "scalar_interval": 0.5, "plots": False}}


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slabs")
    return {**on_four_devices(SCRIPT, str(folder / "split"), json.dumps(RUN), timeout=900), "folder": folder}


SWELLING_SCRIPT = r"""
import json, re, sys
import jax, jax.numpy as jnp, numpy as np
from phasefield.config import validate_run
from phasefield.decomposition import Slabs, collective_bytes, collectives
from phasefield.grid import Grid
from phasefield.models.swelling import make_geometry, make_grid
from phasefield.operators.elasticity import _reference_inverse
from phasefield.runner import build, device_parameters, initial_carry

assert jax.device_count() == 4
slabs, out = Slabs(), {"preconditioner": {}}
rng = np.random.default_rng(5)
for shape in ((8, 10), (8, 6, 4)):  # 2D: 6 rfft coefficients padded to 8 on the split axis 1; 3D: 6 padded to 8
    grid = Grid(shape, tuple(0.5 + 0.25 * a for a in range(len(shape))))
    forces = tuple(jnp.asarray(rng.standard_normal(shape)) for _ in shape)
    one = jax.jit(lambda f: _reference_inverse(f, grid, 2.0, 1.0))(forces)
    split = jax.jit(lambda f: _reference_inverse(f, grid, 2.0, 1.0, slabs))(
        tuple(jax.device_put(f, slabs.sharding(len(shape))) for f in forces))
    out["preconditioner"][str(shape)] = {
        "difference": max(float(jnp.abs(a - b).max() / jnp.abs(a).max()) for a, b in zip(split, one)),
        "layout": [list(b.sharding.spec) for b in split]}

from phasefield.operators import walled_elasticity as we
out["walled_preconditioner"] = {}
for shape, walls in (((8, 10), we.Walls(0, "clamped", "clamped")), ((8, 6), we.Walls(0, "roller", "clamped")),
                     ((8, 6, 5), we.Walls(0, "clamped", "free"))):
    grid = Grid(shape, tuple(0.5 + 0.25 * a for a in range(len(shape))))
    r = tuple(jnp.asarray(rng.standard_normal(s)) for s in we.displacement_shapes(grid, walls))
    def preconditioned(r, slabs=None):
        return we._apply_reference(we._reference(grid, walls, 2.0, 1.0, jnp.float64, slabs), r, grid, walls)
    split_compiled = jax.jit(lambda r: preconditioned(r, slabs)).lower(r).compile()  # once: run and read
    one, split, hlo = jax.jit(preconditioned)(r), split_compiled(r), split_compiled.as_text()
    out["walled_preconditioner"][f"{shape} {walls.low} {walls.high}"] = {
        "difference": max(float(jnp.abs(a - b).max() / jnp.abs(a).max()) for a, b in zip(split, one)),
        "gathered": re.findall(r"= (\S+) all-gather(?:-start)?\(", hlo)}

SWELLING = json.loads(sys.argv[1])
steps, dt = 20, 2.0

def compiled(decomposition):
    simulation = build(validate_run({"scenario": SWELLING, "solver": {"dt": dt, "decomposition": decomposition}}))
    params = device_parameters(simulation.parameters, "float64")
    carry = initial_carry(simulation, params)
    advance = jax.jit(lambda c: jax.lax.fori_loop(0, steps, lambda i, c: simulation.stepper.step(params, c, dt), c))
    return simulation, carry, advance.lower(carry).compile()

simulation, start, one = compiled("none")
_, split_start, split = compiled("slabs")
reference = one(start)
runs = {"split": split(split_start), "ulp": one({**start, "state": {**start["state"],
                                                                     "c": jnp.nextafter(start["state"]["c"], 2.0)}})}
psi = np.asarray(make_geometry(make_grid(simulation.parameters), simulation.parameters).psi)

def compared(carry):
    state, history = carry["state"], carry["history"]
    def relative(a, b, scale=None):
        return float(jnp.abs(a - b).max() / (jnp.abs(b).max() if scale is None else scale))
    fields = {"c": relative(state["c"], reference["state"]["c"]),
              "c_particles": relative(jnp.where(psi > 0.5, state["c"], 0.0),
                                      jnp.where(psi > 0.5, reference["state"]["c"], 0.0)),
              "equivalent_plastic_strain": relative(state["equivalent_plastic_strain"],
                                                    reference["state"]["equivalent_plastic_strain"]),
              "displacement": relative(history["elasticity"]["displacement"],
                                       reference["history"]["elasticity"]["displacement"])}
    stress_scale = max(float(jnp.abs(v).max()) for v in reference["state"]["stress"].values())
    strain_scale = abs(float(reference["history"]["elasticity"]["mean_strain"]["xx"]))
    fields.update({f"stress_{n}": relative(v, reference["state"]["stress"][n], stress_scale)
                   for n, v in state["stress"].items()})
    fields.update({f"mean_strain_{n}": relative(v, reference["history"]["elasticity"]["mean_strain"][n], strain_scale)
                   for n, v in history["elasticity"]["mean_strain"].items()})
    fields.update({n: relative(state[n], reference["state"][n]) for n in ("voltage", "inserted")})
    return fields

hlo = split.as_text()
out["swelling"] = {
    "difference": {run: compared(carry) for run, carry in runs.items()},
    "iterations": {run: {n: int(v) for n, v in carry["cache"].items()} for run, carry in {**runs, "one": reference}.items()},
    "change": float(jnp.abs(reference["state"]["c"] - start["state"]["c"]).max()),
    "plastic": float(jnp.max(reference["state"]["equivalent_plastic_strain"])),
    "layout": {n: list(runs["split"]["state"][n].sharding.spec) for n in ("c", "equivalent_plastic_strain")}
              | {"displacement": list(runs["split"]["history"]["elasticity"]["displacement"].sharding.spec)},
    "collectives": collectives(hlo), "bytes": collective_bytes(hlo),
    "gathered": re.findall(r"= (\S+) all-gather(?:-start)?\(", hlo),
    "largest_permute": max(collective_bytes(line)["collective-permute"] for line in hlo.splitlines())}
print(json.dumps(out))
"""
# one particle, no collector, 32 x 32 cells split into 4 slabs of 8 rows; 10C, 20 steps of 2 s
SWELLING = {"name": "swelling", "size": [4.0, 4.0], "shape": [32, 32], "particles": [[2.0, 2.0, 1.0]],
            "random_particles": 0, "collector_thickness": 0.0, "separator_thickness": 0.5,
            "interface_thickness": 0.2, "gradient_length": 0.1, "c_rate": 10.0}


def forced_devices_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PHASEFIELD_COORDINATOR"))}
    env.update(XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip(),
               PYTHONPATH=str(ROOT))
    return env


def on_four_devices(script: str, *args: str, timeout: float = 300) -> dict:
    """The JSON that ``script`` prints last, run with ``args`` in a subprocess with 4 forced CPU devices."""
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=forced_devices_env(), text=True,
                          capture_output=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def swelling_four_devices():
    return on_four_devices(SWELLING_SCRIPT, json.dumps(SWELLING))


def test_slab_transforms_equal_the_one_device_transforms_and_invert(four_devices):
    """3D periodic (rfft on the last axis, fft on the split one) and Dirichlet x periodic x Neumann (the sign
    and a DCT of complex data on axis 0, the rfft on the split axis 1: 6 coefficients padded to 8)."""
    transforms = four_devices["transforms"]
    assert len(transforms) == 2
    for case, result in transforms.items():
        assert result["forward"] < 1e-14, case
        assert result["round_trip"] < 1e-13, case
        assert result["padding"] == 0.0, case
        assert result["layout"][0][:2] == [None, "x"] and result["layout"][1][:1] == ["x"], case
        assert result["symbol_shape"] == result["coefficient_shape"], case
    assert transforms["(8, 10, 4) ('dirichlet', 'periodic', 'neumann')"]["coefficient_shape"] == [8, 8, 4]


def test_slab_electrode_connectivity_equals_the_one_device_one(four_devices):
    """Metal joined to the electrode (dead Li cut off), found on x slabs (runs along x on the transposed mask),
    equals the one-device result on random 2D and 3D fields with both joined and cut-off metal."""
    for case, result in four_devices["connected"].items():
        assert result["equal"] and 0 < result["joined"] < result["inside"], (case, result)
        assert result["layout"][:1] == ["x"], case


def test_decomposed_spinodal_equals_one_device_run_over_100_steps(four_devices):
    runs = four_devices["runs"]
    assert set(runs) == {"a explicit", "a sbdf2", "cube explicit", "cube sbdf2"}
    for case, result in runs.items():
        assert result["layout"][:1] == ["x"], case
        assert result["change"] > 5e-4, case  # the runs went somewhere
        assert result["difference"] < 1e-12, case


def test_decomposed_steps_exchange_halos_and_transposes_never_the_whole_field(four_devices):
    """100 steps compile to one loop body: the explicit step's two Laplacians are halo exchanges of one cell
    row per side each (4 collective-permutes; the padded n + 2 stencils, which do not split evenly over 4
    devices, took 16 moving 2-3 rows), the spectral step's two transforms one all-to-all each, of one device's
    block of coefficients; no all-gather."""
    cube_block = 8 * 8 * 8 // 4 * 8  # DCT coefficients (real), float64
    periodic_block = 32 * (16 // 4) * 16  # 32 x (24/2 + 1 = 13 -> 16) complex128
    for case, result in four_devices["runs"].items():
        counts, sent = result["collectives"], result["bytes"]
        assert counts["all-gather"] == 0 and counts["reduce-scatter"] == 0, (case, counts)
        if "explicit" in case:
            assert counts["collective-permute"] == 4 and counts["all-to-all"] == 0, (case, counts)
            row = (24 if case.startswith("a") else 64) * 8
            assert sent["collective-permute"] == 2 * 2 * row, (case, sent)
        else:
            assert counts["all-to-all"] == 2 and counts["collective-permute"] == 0, (case, counts)
            assert sent["all-to-all"] == 2 * (periodic_block if case.startswith("a") else cube_block), (case, sent)


def test_grid_not_divisible_by_the_devices_is_refused(four_devices):
    assert "scenario.shape" in four_devices["refused"] and "divisible by the 4 devices" in four_devices["refused"]


def test_decomposition_is_a_solver_key_of_every_scenario_and_no_batch_takes_it():
    from phasefield.batch import run_batch
    from phasefield.registry import scenario_names

    config = {"scenario": {"name": "spinodal", "shape": [16, 16]}, "solver": {"decomposition": "slabs"}}
    assert validate_run(config).solver.decomposition == "slabs"
    with pytest.raises(ConfigError, match="solver.decomposition"):
        validate_run({**config, "solver": {"decomposition": "pencils"}})
    for name in scenario_names():
        assert validate_run({"scenario": {"name": name}, "solver": {"decomposition": "slabs"}}) \
            .solver.decomposition == "slabs", name
    with pytest.raises(ConfigError, match="solver.decomposition"):
        run_batch(config, "scenario.mobility", [1.0, 2.0], "unused")


def test_run_split_over_4_devices_resumes_on_one(four_devices):
    """The checkpoint of a run split over 4 devices (coefficients padded to 16 x 8) resumes on 1 device
    (16 x 7) and continues as the run straight through on 1 device."""
    import h5py
    import numpy as np

    from phasefield.io import read_run
    from phasefield.runner import run

    folder = four_devices["folder"]
    with h5py.File(folder / "split" / "run.h5", "r") as f:
        assert f.attrs["device_count"] == 4 and f["checkpoint/history/u_hat"].shape == (16, 8)
    run(None, folder / "split", resume=True, changes={"scenario.t_end": 2.0})
    run({**RUN, "scenario": {**RUN["scenario"], "t_end": 2.0}}, folder / "straight")
    resumed, straight = read_run(folder / "split" / "run.h5"), read_run(folder / "straight" / "run.h5")
    assert np.array_equal(resumed["step"], straight["step"]) and list(straight["time"]) == [0.0, 0.5, 1.0, 1.5, 2.0]
    difference = np.abs(resumed["fields"]["c"] - straight["fields"]["c"]).max()
    assert difference < 1e-12 * np.abs(straight["fields"]["c"]).max()
    assert np.abs(straight["fields"]["c"][-1] - straight["fields"]["c"][0]).max() > 1e-3


def test_decomposed_dendrite_equals_one_device_run(four_devices):
    """Reaction formulation, held voltage, noise on, 16 x 8 cells, 10 steps: xi and c equal the one-device
    run to 1e-12; phi (an ill-conditioned solve, conductivity contrast 1e6) within 10 times what a 1-ulp
    change of the starting xi makes on one device (both about 1e-11, also after 100 steps)."""
    result = four_devices["dendrite"]
    assert result["change"] > 0.05  # the front moved
    assert result["layout"] == [["x"]] * 3
    split, ulp = result["difference"]["split"], result["difference"]["ulp"]
    assert split["xi"] < 1e-12 and split["c"] < 1e-12, split
    assert split["phi"] < 10 * max(ulp["phi"], 1e-13), (split, ulp)


# a 3D dendrite (16 x 8 x 8 cells, one nucleus, noise on) in both formulations: 10 steps on 1 device, on 4 devices
# and from a start 1 ulp off on 1 device; the gathered arrays' shapes and where they are (about 35 s on 2 cores)
DENDRITE_3D_SCRIPT = r"""
import json, re
import jax, jax.numpy as jnp
import phasefield
from phasefield.config import validate_run
from phasefield.runner import build, device_parameters, initial_carry

assert jax.device_count() == 4
""" + DENDRITE_SETUP + r"""
DENDRITE.update(size=[4.0, 2.0, 2.0], shape=[16, 8, 8], nuclei=[[1.0, 1.0, 1.0]])
out = {}
for formulation in ("reaction", "chen2015"):
    _, _, start, one = dendrite("none", formulation=formulation)
    _, _, split_start, split = dendrite("slabs", formulation=formulation)
    reference, halved = one(start), split(split_start)
    ulp = one({**start, "state": {**start["state"], "xi": jnp.nextafter(start["state"]["xi"], 2.0)}})
    def relative(carry):
        return {name: float(jnp.max(jnp.abs(carry["state"][name] - reference["state"][name]))
                            / jnp.max(jnp.abs(reference["state"][name]))) for name in ("xi", "c", "phi")}
    hlo = split.as_text()
    gathers = [line for line in hlo.splitlines() if re.search(r"all-gather(?:-start)?\(", line)]
    out[formulation] = {"split": relative(halved), "ulp": relative(ulp),
                        "change": float(jnp.max(jnp.abs(reference["state"]["xi"] - start["state"]["xi"]))),
                        "layout": [list(halved["state"][name].sharding.spec) for name in ("xi", "c", "phi")],
                        "gathered": [re.search(r"\[([\d,]*)\]", line)[1] for line in gathers],
                        "in_potential_solve": all("potential_solve" in line for line in gathers)}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def dendrite_3d_four_devices():
    return on_four_devices(DENDRITE_3D_SCRIPT)


@pytest.mark.parametrize("formulation", ["reaction", "chen2015"])
def test_decomposed_3d_dendrite_equals_one_device_run(dendrite_3d_four_devices, formulation):
    """A 3D dendrite (16 x 8 x 8 cells in 4 slabs of 4 x 8 x 8, one nucleus, noise on, 10 steps; chen2015 is
    dendrite_3d's formulation): xi and c equal the one-device run to 1e-12, phi within 10 times what a 1-ulp
    change of the starting xi makes on one device; the only all-gathers are the potential solve's coarsest
    multigrid level (8 x 4 x 4), agglomerated on every device."""
    result = dendrite_3d_four_devices[formulation]
    assert result["change"] > 0.05, result
    assert result["layout"] == [["x"]] * 3, result
    split, ulp = result["split"], result["ulp"]
    assert split["xi"] < 1e-12 and split["c"] < 1e-12, split
    assert split["phi"] < 10 * max(ulp["phi"], 1e-13), (split, ulp)
    assert result["in_potential_solve"] and set(result["gathered"]) <= {"8,4,4"}, result["gathered"]


@pytest.fixture(scope="module")
def leaky_four_devices():
    return on_four_devices(LEAKY_SCRIPT)


@pytest.mark.slow  # two compiles of the leaky balanced step, about 40 s: outside the suite's budget
def test_decomposed_dendrite_with_electronic_leakage_equals_one_device_run(leaky_four_devices):
    """The same run with electronic leakage (1e-3 S/m: the metal's potential phi_s is solved in every Newton
    iteration of the balanced step): xi and c equal the one-device run to 1e-12, phi and phi_s to 1e-9 (the
    two ill-conditioned solves; phi's 1-ulp sensitivity is about 1e-11)."""
    result = leaky_four_devices
    assert result["change"] > 0.05, result
    assert result["xi"] < 1e-12 and result["c"] < 1e-12, result
    assert result["phi"] < 1e-9 and result["phi_s"] < 1e-9, result


def test_dendrite_state_written_on_4_devices_continues_on_one(four_devices):
    """The checkpointed part of the 4-device carry after 10 steps, restored on 1 device and run 10 more
    steps, is the one-device run of 20 steps (to the round-off of the split run)."""
    resumed, split = four_devices["dendrite"]["difference"]["resumed"], four_devices["dendrite"]["difference"]["split"]
    assert resumed["xi"] < 1e-12 and resumed["c"] < 1e-12, resumed
    assert resumed["phi"] < 10 * max(split["phi"], 1e-13), (resumed, split)


def test_decomposed_dendrite_step_gathers_only_coarse_multigrid_levels(four_devices):
    """Halo exchanges and transposes; the only all-gathers are the potential solves' coarse multigrid levels (on the
    16 x 8 grid the 8 x 4 level, the coarsest, agglomerated: its operator once per solve, its residual once per
    V-cycle), solved on every device."""
    result = four_devices["dendrite"]
    counts = result["collectives"]
    assert counts["collective-permute"] > 0 and counts["all-to-all"] > 0, counts
    assert len(result["gathered"]) == counts["all-gather"] > 0, (result["gathered"], counts)
    for dims in result["gathered"]:
        assert math.prod(int(d) for d in dims.split(",")) <= 8 * 4, result["gathered"]


def test_decomposed_dendrite_step_transposes_only_in_its_transforms(four_devices):
    """The all-to-alls of the split dendrite step are the explicit ones of its spectral transforms and electrode
    connectivity (``all_to_all`` in a ``shard_map``), none the partitioner's transpose of a whole field: the
    Dirichlet ghost cells of the Li+ transport's reservoir wall on the split axis exchange one-cell halos (computed
    on the wall slab before the concatenation, they made 16 of the 29 all-to-alls of the step at 64 x 32 on 2
    devices)."""
    transposed = four_devices["dendrite"]["transposed"]
    assert transposed and all(name.endswith("all_to_all") for name in transposed), transposed


MULTIGRID_SCRIPT = r"""
import json, re
import jax, jax.numpy as jnp, numpy as np
import phasefield
from phasefield.decomposition import Slabs, collectives
from phasefield.grid import Boundary, Grid, Side
from phasefield.operators import elliptic

assert jax.device_count() == 4
slabs, rng = Slabs(), np.random.default_rng(7)
grid = Grid((64, 32), 0.5)
cell = np.indices(grid.shape)
metal = (cell[0] < 8) | ((cell[0] < 32) & (np.abs(cell[1] - 16) < 2))
sigma = np.where(metal, 1e6, 1.0) * (1.0 + 0.1 * rng.random(grid.shape))
source = 1e-3 * rng.standard_normal(grid.shape)
walls = Boundary(((Side("dirichlet", 0.0), Side("dirichlet", 1.0)), (Side("neumann"), Side("neumann"))))

def potential(split):
    args = [jax.device_put(a, slabs.sharding(2)) if split else a for a in (sigma, source)]
    solve = jax.jit(lambda s, q: elliptic.solve_potential(s, q, grid, walls, jnp.zeros_like(q), 1e-10, 100,
                                                          slabs=slabs if split else None)).lower(*args).compile()
    phi, iterations, _ = solve(*args)
    return np.asarray(phi), int(iterations), solve.as_text()

phi_one, iterations_one, _ = potential(False)
phi_split, iterations_split, hlo = potential(True)
elliptic.AGGLOMERATED_CELLS = 0  # every level split, as before agglomeration
_, _, hlo_split_levels = potential(True)
print(json.dumps({"difference": float(np.abs(phi_split - phi_one).max() / np.abs(phi_one).max()),
                  "iterations": [iterations_one, iterations_split], "collectives": collectives(hlo),
                  "split_levels": collectives(hlo_split_levels),
                  "gathered": [[int(d) for d in dims.split(",") if d] for dims in
                               re.findall(r"= \w+\[([\d,]*)\]\S* all-gather(?:-start)?\(", hlo)]}))
"""


@pytest.fixture(scope="module")
def multigrid_four_devices():
    return on_four_devices(MULTIGRID_SCRIPT)


def test_decomposed_multigrid_solve_equals_one_device_solve_and_agglomerates_coarse_levels(multigrid_four_devices):
    """The potential solve's multigrid CG on 4 devices (64 x 32, contrast 1e6, to 1e-10): the one-device solution to
    1e-12 in as many iterations; the levels of at most AGGLOMERATED_CELLS cells are whole on every device, so the
    solve gathers only coarse-level arrays (at most 33 x 17 values, never the 64 x 32 grid) and holds fewer than half
    the collective-permutes (halo exchanges) of the same solve with every level split (67 against 27 measured)."""
    result = multigrid_four_devices
    assert result["difference"] < 1e-12 and result["iterations"][0] == result["iterations"][1] > 2, result
    assert 0 < 2 * result["collectives"]["collective-permute"] < result["split_levels"]["collective-permute"], result
    assert result["gathered"] and all(math.prod(dims) <= 33 * 17 for dims in result["gathered"]), result["gathered"]


def test_noise_is_one_draw_per_global_cell_on_any_device_count(four_devices):
    """The Langevin kick on 4 devices is the kick on 1 bit for bit, and both are the partitionable-threefry
    draw of the whole grid from the key (also where jax_threefry_partitionable is off)."""
    noise = four_devices["noise"]
    assert noise["devices"] == 0.0 and noise["layout"][:1] == ["x"]
    assert noise["expected"] < 1e-15 and noise["size"] > 0.1


def test_slab_elasticity_preconditioner_equals_the_one_device_one(swelling_four_devices):
    """The reference inverse of the elasticity CG on fields split over 4 devices (2D: rfft coefficients 6 padded to
    8 on the split axis; 3D: 6 padded to 8) is the one-device one to round-off, and its result stays split."""
    cases = swelling_four_devices["preconditioner"]
    assert set(cases) == {"(8, 10)", "(8, 6, 4)"}
    for case, result in cases.items():
        assert result["difference"] < 1e-14, (case, result)
        assert all(spec[:1] == ["x"] for spec in result["layout"]), (case, result)


def test_slab_walled_preconditioner_equals_the_one_device_one(swelling_four_devices):
    """The mirrored-FFT reference inverse of the walled elasticity CG (fracture, filament) with the wall axis x split
    over 4 devices (rows transformed along y (and z), transposed, mirrored and transformed along x; 2D: 6 modes
    padded to 8, the clamped walls' Woodbury terms) is the one-device one to round-off; the only gather is of
    the normal displacement's ``n_x + 1`` faces, which do not split evenly, at the end."""
    cases = swelling_four_devices["walled_preconditioner"]
    assert len(cases) == 3
    for case, result in cases.items():
        assert result["difference"] < 1e-14, (case, result)
        assert len(result["gathered"]) <= 1, (case, result)


def test_decomposed_swelling_equals_one_device_run(swelling_four_devices):
    """One particle lithiating at 10C, 32 x 32 cells, 20 steps of 2 s (the particle yields): c in the particle,
    the displacement, the mean strain and the inserted Li equal the one-device run to 1e-12; every compared
    field (c on the whole grid too, where the psi floor of the electrolyte cells amplifies round-off to about
    1e-10) within 10 times what a 1-ulp change of the starting c makes on one device."""
    result = swelling_four_devices["swelling"]
    assert result["change"] > 0.1 and result["plastic"] > 0.01  # lithiation went on and the particle yielded
    assert result["layout"] == {"c": ["x"], "equivalent_plastic_strain": ["x"], "displacement": [None, "x"]}
    split, ulp = result["difference"]["split"], result["difference"]["ulp"]
    for name in ("c_particles", "displacement", "mean_strain_xx", "mean_strain_yy", "mean_strain_xy", "inserted"):
        assert split[name] < 1e-12, (name, split)
    for name, difference in split.items():
        assert difference < 10 * max(ulp[name], 1e-13), (name, split, ulp)
    assert result["iterations"]["split"] == result["iterations"]["one"]


def test_decomposed_swelling_step_never_gathers_a_field(swelling_four_devices):
    """20 steps compile to one loop body with no all-gather: the Cahn-Hilliard solve's and the elasticity
    preconditioner's transforms are all-to-alls of one device's block of coefficients (32 x 17 padded to 20,
    complex128, split in 4), the stencils halo exchanges of a few cell rows (at most 4, of a slab's 8)."""
    result = swelling_four_devices["swelling"]
    counts, sent = result["collectives"], result["bytes"]
    assert counts["all-gather"] == 0 and counts["reduce-scatter"] == 0 and not result["gathered"], counts
    block = 32 * (20 // 4) * 16
    assert counts["all-to-all"] > 0 and sent["all-to-all"] == counts["all-to-all"] * block, (counts, sent)
    assert counts["collective-permute"] > 0 and result["largest_permute"] <= 4 * 32 * 8, result


DENDRITE_SOLID_SCRIPT = r"""
import json, re, sys
import jax, jax.numpy as jnp, numpy as np
from phasefield.config import validate_run
from phasefield.decomposition import collectives
from phasefield.runner import build, device_parameters, initial_carry

assert jax.device_count() == 4
SCENARIO = json.loads(sys.argv[1])
steps, dt = 10, 0.02

def compiled(decomposition):
    simulation = build(validate_run({"scenario": SCENARIO, "solver": {"dt": dt, "decomposition": decomposition}}))
    params = device_parameters(simulation.parameters, "float64")
    carry = initial_carry(simulation, params)
    advance = jax.jit(lambda c: jax.lax.fori_loop(0, steps, lambda i, c: simulation.stepper.step(params, c, dt), c))
    return carry, advance.lower(carry).compile()

start, one = compiled("none")
split_start, split = compiled("slabs")
reference = one(start)
runs = {"init": (split_start, start), "split": (split(split_start), reference),
        "ulp": (one({**start, "state": {**start["state"], "xi": jnp.nextafter(start["state"]["xi"], 2.0)}}), reference)}
names = {"xi": ("state", "xi"), "c": ("state", "c"), "phi": ("state", "phi"), "pressure": ("state", "pressure"),
         "equivalent_plastic_strain": ("state", "equivalent_plastic_strain"),
         "plastic_strain": ("state", "plastic_strain"), "displacement": ("history", "displacement")}
hlo = split.as_text()
print(json.dumps({
    "difference": {run: {name: float(jnp.abs(carry[part][key] - ref[part][key]).max()
                                     / jnp.maximum(jnp.abs(ref[part][key]).max(), 1e-300))
                         for name, (part, key) in names.items()} for run, (carry, ref) in runs.items()},
    "change": float(jnp.abs(reference["state"]["xi"] - start["state"]["xi"]).max()),
    "plastic": float(jnp.max(reference["state"]["equivalent_plastic_strain"])),
    "layout": {name: list(runs["split"][0][part][key].sharding.spec) for name, (part, key) in names.items()},
    "collectives": collectives(hlo),
    "gathered": re.findall(r"= \w+\[([\d,]*)\]\S* all-gather(?:-start)?\(", hlo)}))
"""
# the dendrite of the tests above with the mechanics (stack pressure, plastic metal)
DENDRITE_SOLID = {"name": "dendrite_solid", "size": [4.0, 2.0], "shape": [16, 8], "electrode_position": 1.0,
                  "short_circuit_gap": 1.0, "nuclei": [[1.0, 1.0]], "voltage": -0.2, "noise_amplitude": 0.5}


@pytest.fixture(scope="module")
def dendrite_solid_four_devices():
    return on_four_devices(DENDRITE_SOLID_SCRIPT, json.dumps(DENDRITE_SOLID))


@pytest.mark.slow  # two compiles of the coupled step, about 30 s: outside the suite's budget
def test_decomposed_dendrite_solid_equals_one_device_run(dendrite_solid_four_devices):
    """Reaction formulation with the mechanics (the metal yields), 16 x 8 cells, 10 steps: the initial plastic
    equilibrium and, after 10 steps, xi, c and the mechanics' fields (pressure, plastic strain, displacement) equal
    the one-device ones to 1e-12; phi within 10 times what a 1-ulp change of the starting xi makes on one device.
    Every field of the carry split along x (the plastic strain and the displacement along their grid x axis); the
    only all-gathers are the multigrid's coarse level (8 x 4, agglomerated)."""
    result = dendrite_solid_four_devices
    assert result["change"] > 0.05 and result["plastic"] > 0.0
    assert result["layout"] == {**dict.fromkeys(("xi", "c", "phi", "pressure", "equivalent_plastic_strain"), ["x"]),
                                "plastic_strain": [None, "x"], "displacement": [None, "x"]}
    for run in ("init", "split"):
        for name, difference in result["difference"][run].items():
            bound = 10 * max(result["difference"]["ulp"]["phi"], 1e-13) if name == "phi" else 1e-12
            assert difference < bound, (run, name, result["difference"])
    assert len(result["gathered"]) == result["collectives"]["all-gather"], result
    for dims in result["gathered"]:
        assert math.prod(int(d) for d in dims.split(",")) <= 8 * 4, result["gathered"]


SCENARIO_SCRIPT = r"""
import json, re, sys
import jax, jax.numpy as jnp, numpy as np
from phasefield.config import validate_run
from phasefield.decomposition import collective_bytes, collectives
from phasefield.runner import build, device_parameters, initial_carry

assert jax.device_count() == 4


def leaves(tree):
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def compared(carry, case):  # the state's leaves, and the cache's (prefixed) where the case says so
    cache = leaves(carry["cache"]) if case.get("cache") else {}
    return leaves(carry["state"]) | {"['cache']" + k: v for k, v in cache.items()}


def compiled(case, decomposition):
    solver = {**case["solver"], "dt": case["dt"], "decomposition": decomposition}
    simulation = build(validate_run({"scenario": case["scenario"], "solver": solver}))
    params = device_parameters(simulation.parameters, "float64")
    carry = (initial_carry(simulation, params) if "c" not in case
             else simulation.stepper.init(params, {"c": np.full(simulation.grid.shape, case["c"])}))
    step = lambda i, c: simulation.stepper.step(params, c, case["dt"])
    return carry, jax.jit(lambda c: jax.lax.fori_loop(0, case["steps"], step, c)).lower(carry).compile()


out = {}
for name, case in json.loads(sys.argv[1]).items():
    start, one = compiled(case, "none")
    split_start, split = compiled(case, "slabs")
    perturbed = "".join(f"['{key}']" for key in case["perturb"])  # the start 1 ulp off in this field (towards 1/2:
    ulp = jax.tree_util.tree_map_with_path(  # a damage of 1 moves too)
        lambda path, v: jnp.nextafter(v, 0.5) if jax.tree_util.keystr(path) == perturbed else v, start["state"])
    reference, initial = compared(one(start), case), compared(start, case)
    runs = {"split": split(split_start), "ulp": one({**start, "state": ulp})}
    floating = [k for k, v in reference.items() if jnp.issubdtype(v.dtype, jnp.floating)]
    scale = {k: float(jnp.max(jnp.abs(reference[k]))) for k in floating}
    moved = max([scale[k] for k in floating if "['displacement']" in k], default=0.0)
    scale.update({k: moved for k in floating if "['displacement']" in k})  # on the scale of the whole displacement
    hlo = split.as_text()
    out[name] = {
        "difference": {run: {k: float(jnp.max(jnp.abs(v - reference[k]))) / max(scale[k], 1e-300)
                             for k, v in compared(carry, case).items() if k in floating}
                       for run, carry in runs.items()},
        "largest": scale, "change": {k: float(jnp.max(jnp.abs(reference[k] - initial[k]))) for k in floating},
        "layout": {k: list(v.sharding.spec) for k, v in leaves(runs["split"]["state"]).items() if v.ndim},
        "shapes": {k: list(v.shape) for k, v in reference.items()},
        "collectives": collectives(hlo), "bytes": collective_bytes(hlo),
        "gathered": [[int(d) for d in dims.split(",") if d]
                     for dims in re.findall(r"= \w+\[([\d,]*)\]\S* all-gather(?:-start)?\(", hlo)]}
print(json.dumps(out))
"""
# PFHub 2 (Ostwald ripening, c and four order parameters) and 6 (Cahn-Hilliard + Poisson), each scheme's path:
# the stencils (explicit), the cosine/Fourier transforms (sbdf2), the 6b Poisson CG on the staircase
PFHUB = {
    "ostwald a explicit": {"scenario": {"name": "pfhub_ostwald", "variant": "a", "shape": [16, 12]},
                           "solver": {"scheme": "explicit"}, "steps": 100, "dt": 0.0015, "perturb": ["c"]},
    "ostwald b sbdf2": {"scenario": {"name": "pfhub_ostwald", "variant": "b", "shape": [16, 12]},
                        "solver": {"scheme": "sbdf2"}, "steps": 100, "dt": 0.05, "perturb": ["c"]},
    "electro a sbdf2": {"scenario": {"name": "pfhub_electro", "variant": "a", "shape": [16, 16]},
                        "solver": {"scheme": "sbdf2"}, "steps": 100, "dt": 0.5, "perturb": ["c"]},
    "electro b explicit": {"scenario": {"name": "pfhub_electro", "variant": "b", "shape": [16, 16]},
                           "solver": {"scheme": "explicit"}, "steps": 100, "dt": 0.0015, "perturb": ["c"]},
}
# PFHub 3a (phi by forward Euler on the face-flux stencils, U by backward Euler in the cosine basis, the tip's speed in
# the cache) and 7a (periodic x split, Dirichlet walls in y): the scenarios with their own steps, on small grids
PFHUB_OWN_STEPS = {
    "dendrite 3a": {"scenario": {"name": "pfhub_dendrite", "shape": [16, 16], "seed_radius": 6.0},
                    "solver": {}, "steps": 100, "dt": 0.05, "perturb": ["phi"], "cache": True},
    "mms a": {"scenario": {"name": "pfhub_mms", "variant": "a", "shape": [16, 8]},
              "solver": {}, "steps": 100, "dt": 0.01, "perturb": ["eta"]},
}
# the walled fracture scenarios (16 x 16 cells, 4 slabs of 4 rows): a notched plate pulled in 3 load steps (the
# notch relaxes, then cracks), a Li filament in its flaw (also with the electrolyte network under current control,
# and two filaments, 4 and 3 um deep, lumped and in the network) for 3 steps of 1 s;
# and swelling with fracture (one elastic particle delithiated well below c_0: it cracks in the 10 steps), 32 x 32
# cells
WALLED = {
    "fracture": {"scenario": {"name": "fracture", "size": [16.0, 16.0], "shape": [16, 16], "notch_length": 4.0,
                              "length": 1.0, "max_displacement": 0.1},
                 "solver": {}, "steps": 3, "dt": 0.2, "perturb": ["fracture", "damage"], "tolerance": 1e-9},
    "filament": {"scenario": {"name": "filament", "size": [16.0, 16.0], "shape": [16, 16], "length": 1.0,
                              "flaw_depth": 4.0, "flaw_width": 0.05, "max_iterations": 10, "pressure_passes": 40,
                              "pressure_tolerance": 1e-5, "short_circuit_gap": 2.0},
                 "solver": {}, "steps": 3, "dt": 1.0, "perturb": ["fracture", "damage"], "tolerance": 1e-5},
    "filament network": {"scenario": {"name": "filament", "size": [16.0, 16.0], "shape": [16, 16], "length": 1.0,
                                      "flaw_depth": 4.0, "flaw_width": 0.05, "max_iterations": 10,
                                      "pressure_passes": 40, "pressure_tolerance": 1e-5, "short_circuit_gap": 2.0,
                                      "ionic_field": True, "control": "current", "current_density": 30.0},
                         "solver": {}, "steps": 3, "dt": 1.0, "perturb": ["fracture", "damage"], "tolerance": 1e-5},
    "filament two flaws": {"scenario": {"name": "filament", "size": [16.0, 16.0], "shape": [16, 16], "length": 1.0,
                                        "flaws": [[4.0, 4.0, 0.0], [3.0, 12.0, 0.0]], "flaw_width": 0.05,
                                        "max_iterations": 10, "pressure_passes": 40, "pressure_tolerance": 1e-5,
                                        "short_circuit_gap": 2.0},
                           "solver": {}, "steps": 3, "dt": 1.0, "perturb": ["fracture", "damage"], "tolerance": 1e-5},
    "filament network two flaws": {
        "scenario": {"name": "filament", "size": [16.0, 16.0], "shape": [16, 16], "length": 1.0,
                     "flaws": [[4.0, 4.0, 0.0], [3.0, 12.0, 0.0]], "flaw_width": 0.05, "max_iterations": 10,
                     "pressure_passes": 40, "pressure_tolerance": 1e-5, "short_circuit_gap": 2.0, "ionic_field": True,
                     "control": "current", "current_density": 30.0},
        "solver": {}, "steps": 3, "dt": 1.0, "perturb": ["fracture", "damage"], "tolerance": 1e-5},
    "swelling fracture": {
        "scenario": {"name": "swelling", "size": [8.0, 8.0], "shape": [32, 32], "particles": [[4.0, 4.0, 1.0]],
                     "random_particles": 0, "collector_thickness": 0.0, "separator_thickness": 1.0,
                     "interface_thickness": 0.4, "gradient_length": 0.3, "interaction": 0.0,
                     "stress_coupling": False, "c_rate": 1e-3, "host_modulus": 50.0, "lithiated_modulus": 50.0,
                     "electrolyte_modulus": 50.0, "particle_poisson": 0.25, "electrolyte_poisson": 0.25,
                     "host_yield_stress": 0.0, "lithiated_yield_stress": 0.0, "stack_pressure": 0.0,
                     "volume_expansion": 0.1, "initial_fraction": 0.3, "mechanics_tolerance": 1e-10,
                     "mechanics_max_iterations": 2000, "fracture": True, "damage_length": 0.5,
                     "host_toughness": 2.0, "lithiated_toughness": 2.0, "electrolyte_toughness": 2.0},
        "solver": {}, "steps": 10, "dt": 1e-3, "perturb": ["c"], "c": 0.05, "tolerance": 1e-10},
}


def compared_on_four_devices(cases):
    return on_four_devices(SCENARIO_SCRIPT, json.dumps(cases), timeout=600)


@pytest.fixture(scope="module")
def pfhub_four_devices():
    return compared_on_four_devices(PFHUB)


@pytest.fixture(scope="module")
def pfhub_own_steps_four_devices():
    return compared_on_four_devices(PFHUB_OWN_STEPS)


@pytest.fixture(scope="module")
def walled_four_devices():
    return compared_on_four_devices(WALLED)


@pytest.mark.slow  # four compiles of the PFHub steps, about 35 s: outside the suite's budget
def test_decomposed_pfhub_benchmarks_equal_one_device_runs(pfhub_four_devices):
    """PFHub 2a (explicit) and 2b (SBDF2, cosine transforms) and 6a (SBDF2, the Poisson solve in the slab
    transforms) and 6b (explicit, Poisson by CG on the staircase), 100 steps on 4 devices: every field of the
    carry split along x and equal to the one-device run to 1e-12 relative."""
    assert set(pfhub_four_devices) == set(PFHUB)
    for case, result in pfhub_four_devices.items():
        assert result["change"]["['c']"] > 1e-3, case  # the runs went somewhere
        for name, spec in result["layout"].items():
            assert spec[:1] == ["x"], (case, name, result["layout"])
        for name, difference in result["difference"]["split"].items():
            assert difference < 1e-12, (case, name, difference)


@pytest.mark.slow  # the fixture of the test above
def test_decomposed_pfhub_steps_exchange_halos_or_transposes_never_the_whole_field(pfhub_four_devices):
    """The stencil steps exchange halos of one cell row each (collective-permutes; the CG's dot products
    all-reduces; 2a: 12 of 96 bytes, where the padded stencils took 48 and 11.5 kB), the spectral steps transpose
    (all-to-alls, none of the field's size); none gathers a field."""
    for case, result in pfhub_four_devices.items():
        counts, sent = result["collectives"], result["bytes"]
        assert counts["all-gather"] == 0 and counts["reduce-scatter"] == 0, (case, counts)
        if "explicit" in case:
            row = PFHUB[case]["scenario"]["shape"][1] * 8
            assert counts["collective-permute"] > 0 and counts["all-to-all"] == 0, (case, counts)
            assert sent["collective-permute"] == counts["collective-permute"] * row, (case, sent)
        else:
            assert counts["all-to-all"] > 0 and counts["collective-permute"] == 0, (case, counts)


def test_decomposed_pfhub_dendrite_and_mms_equal_one_device_runs(pfhub_own_steps_four_devices):
    """PFHub 3a (16 x 16, the seed grew, the tip moving) and 7a (16 x 8, the interface moving through the periodic x
    split), 100 steps on 4 devices: the fields split along x and, with 3a's tip velocity, equal to the one-device run to
    1e-12 relative; the steps exchange halos of one cell row each (3a also transposes for U's solve) and gather
    nothing (3a's tip is read off the split row by masked sums, all-reduces)."""
    result = pfhub_own_steps_four_devices
    assert set(result) == set(PFHUB_OWN_STEPS)
    assert result["dendrite 3a"]["change"]["['phi']"] > 0.5 and result["mms a"]["change"]["['eta']"] > 0.1, result
    assert result["dendrite 3a"]["largest"]["['cache']['tip_velocity']"] > 1e-3, result["dendrite 3a"]["largest"]
    for case, outcome in result.items():
        assert all(spec[:1] == ["x"] for spec in outcome["layout"].values()), (case, outcome["layout"])
        for name, difference in outcome["difference"]["split"].items():
            assert difference < 1e-12, (case, name, difference)
        counts = outcome["collectives"]
        assert counts["all-gather"] == 0 and counts["reduce-scatter"] == 0 and counts["collective-permute"] > 0, counts
        assert (counts["all-to-all"] > 0) == (case == "dendrite 3a"), (case, counts)
        row = PFHUB_OWN_STEPS[case]["scenario"]["shape"][1] * 8
        assert outcome["bytes"]["collective-permute"] == counts["collective-permute"] * row, (case, outcome["bytes"])


@pytest.mark.slow  # seven compiles of nested solver loops, about 5 minutes: outside the suite's budget
def test_decomposed_fracture_scenarios_equal_one_device_runs(walled_four_devices):
    """fracture, filament (one flaw, with the electrolyte network, and two flaws with their coupled pressures) and
    swelling with fracture on 4
    devices, after the cracks grew: the cell fields of the carry
    split along x, and every field (the displacement on the scale of its largest component) within 10 times what
    a 1-ulp change of the start (the damage; swelling: c) makes on one device, or 10 times the elasticity CG's
    relative tolerance, where the runs' solves stop (fracture: 1e-9; the 1-ulp change of a damage of 0 or 1
    barely moves it); for the filament 10 times its Li pressure balance's tolerance, 1e-5 (its damage differs by
    4e-6; a 1-ulp change of the damage moves it by 1e-7 to 4e-6, depending on the direction)."""
    assert set(walled_four_devices) == set(WALLED)
    for case, result in walled_four_devices.items():
        damage = "['fracture']['damage']" if case != "swelling fracture" else "['damage']"
        assert result["change"][damage] > 0.5, (case, result["change"])
        assert result["layout"][damage] == ["x"], (case, result["layout"])
        split, ulp = result["difference"]["split"], result["difference"]["ulp"]
        for name, difference in split.items():
            if math.isnan(result["largest"][name]):  # filament's short_time: no short circuit
                continue
            assert difference < 10 * max(ulp[name], WALLED[case]["tolerance"]), (case, name, split, ulp)


@pytest.mark.slow  # the fixture of the test above
def test_decomposed_walled_solve_gathers_no_grid_per_iteration(walled_four_devices):
    """fracture's and filament's elasticity CG on slabs (also with the electrolyte network, whose unit-field CG sums
    are all-reduces too): the preconditioner transposes (all-to-alls), the CG's sums are
    all-reduces; the only arrays gathered are the displacement along x (17 faces, split 5 + 5 + 5 + 2 inside the
    step), made whole for the carry (with two flaws, each filament's unit-pressure displacement), and the
    filament's column profiles (16 values), never the mirrored grid (32 x 16) or its modes. fracture: at most the
    carry's two such gathers (2 x 20 x 16 float64) per step."""
    for case in ("fracture", "filament", "filament network", "filament network two flaws"):
        result = walled_four_devices[case]
        assert result["collectives"]["all-to-all"] > 0, (case, result["collectives"])
        for dims in result["gathered"]:  # two flaws: a leading axis of the two filaments' unit displacements
            assert math.prod(dims[-2:]) <= 20 * 16 and (len(dims) < 2 or dims[-2] <= 20), (case, result["gathered"])
            assert len(dims) < 3 or dims[0] <= 2, (case, result["gathered"])
    assert walled_four_devices["fracture"]["bytes"]["all-gather"] <= 2 * 20 * 16 * 8, walled_four_devices["fracture"]
