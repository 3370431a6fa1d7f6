"""Fracture in the swelling model (``fracture: true``): the AT1 elastic limit of a shrinking particle against the
Eshelby interior stress, and the Li flux cut by cracked faces against the steady flux of a 1D ring."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasefield.config import ConfigError, validate_run
from phasefield.grid import Boundary, Grid
from phasefield.models import swelling as sw
from phasefield.operators import SpectralBasis
from phasefield.runner import build, device_parameters

E, NU, TOUGHNESS, LENGTH, BETA, C0 = 50.0, 0.25, 2.0, 0.25, 0.1, 0.3  # GPa, -, J/m^2, um, -, -
N_STEPS = 40
# one elastic particle, moduli equal everywhere (the Eshelby interior stress is uniform), no stress coupling
# and chi = 0 (c stays uniform), a negligible current: the load is the shrinkage of c below initial_fraction
CELL = {"name": "swelling", "t_end": 1.0, "size": [8.0, 8.0], "shape": [64, 64], "particles": [[4.0, 4.0, 1.0]],
        "random_particles": 0, "collector_thickness": 0.0, "separator_thickness": 1.0, "interface_thickness": 0.2,
        "gradient_length": 0.15, "interaction": 0.0, "stress_coupling": False, "c_rate": 1e-3,
        "host_modulus": E, "lithiated_modulus": E, "electrolyte_modulus": E, "particle_poisson": NU,
        "electrolyte_poisson": NU, "host_yield_stress": 0.0, "lithiated_yield_stress": 0.0, "stack_pressure": 0.0,
        "volume_expansion": BETA, "initial_fraction": C0, "mechanics_tolerance": 1e-10,
        "mechanics_max_iterations": 2000, "fracture": True, "damage_length": LENGTH, "host_toughness": TOUGHNESS,
        "lithiated_toughness": TOUGHNESS, "electrolyte_toughness": TOUGHNESS}


def critical_interior_stress():
    """In-plane interior stress ``s`` at the AT1 limit of a plane-strain cylinder with eigenstrain ``e I`` (infinite
    homogeneous matrix): ``sigma = s (1, 1, 2)``, ``s = -E e / (2 (1 - nu))``, all of it tensile for ``e < 0``, so the
    Amor energy is ``H = (tr sigma)^2 / (18 K) + dev sigma : dev sigma / (4 mu) = s^2 / (2 E_eff)`` and the AT1
    elastic limit ``H = 3 G_c / (16 ell)`` is ``s_c = sqrt(3 E_eff G_c / (8 ell))`` (G_c in GPa um)."""
    bulk, shear = E / (3 * (1 - 2 * NU)), E / (2 * (1 + NU))
    effective = 1.0 / (2.0 * (16.0 / (18.0 * bulk) + 1.0 / (6.0 * shear)))
    return np.sqrt(3.0 * effective * TOUGHNESS * 1e-3 / (8.0 * LENGTH))


def concentration_for(eigenstrain):
    """``c`` whose Hencky eigenstrain ``(ln(1 + beta c) - ln(1 + beta c_0)) / 3`` is ``eigenstrain``."""
    return ((1 + BETA * C0) * np.exp(3.0 * eigenstrain) - 1.0) / BETA


@pytest.fixture(scope="module")
def shrinking_particle():
    config = validate_run({"scenario": CELL, "solver": {"dt": 1e-3}, "output": {}})
    simulation = build(config)
    params = device_parameters(simulation.parameters, "float64")

    @jax.jit
    def run(c):
        carry = simulation.stepper.init(params, {"c": c})
        initial_drive = carry["state"]["damage_drive"]

        def body(carry, _):
            carry = simulation.stepper.step(params, carry, 1e-3)
            return carry, jnp.max(carry["state"]["damage"])

        carry, damage_max = jax.lax.scan(body, carry, None, length=N_STEPS)
        return carry, damage_max, initial_drive

    psi = np.asarray(sw.make_geometry(simulation.grid, config.scenario).psi)
    return run, psi


@pytest.mark.parametrize("load", [0.9, 1.1])
def test_shrinking_particle_cracks_only_above_the_at1_strength(shrinking_particle, load):
    """Delithiation below c_0 shrinks the particle: uniform triaxial tension inside. Below the AT1 strength
    (0.9 s_c) the damage stays exactly 0 in every step; above it (1.1 s_c) the particle cracks (d -> 1 on a
    sizeable part of it) within the steps. The interior driving force is the analytic one to the image
    stresses of the periodic cell (particle area fraction 5 %)."""
    run, psi = shrinking_particle
    stress = load * critical_interior_stress()
    eigenstrain = -stress * 2.0 * (1.0 - NU) / E
    carry, damage_max, initial_drive = run(jnp.full(psi.shape, concentration_for(eigenstrain)))
    threshold = 3.0 * TOUGHNESS * 1e-3 / (16.0 * LENGTH)
    core = psi > 0.99
    ratio = float(np.mean(np.asarray(initial_drive)[core])) / threshold
    assert ratio == pytest.approx(load**2, rel=0.12)  # the images lower the interior stress by ~5 %
    damage = np.asarray(carry["state"]["damage"])
    if load < 1:
        assert float(np.max(np.asarray(damage_max))) == 0.0
    else:
        assert float(damage_max[-1]) > 0.9
        assert np.mean(damage[psi > 0.5] > 0.5) > 0.1
        assert np.all(np.diff(np.asarray(damage_max)) >= 0)  # irreversible


def test_compression_alone_drives_no_crack(shrinking_particle):
    """A swelling particle (c above c_0) is in all-round compression, ``sigma = s (1, 1, 2)``, ``s < 0``. Its
    deviatoric energy ``s^2 / (6 mu)`` is set to twice the AT1 threshold: Amor's ``psi+`` would crack it. The
    spectral drive (the default) of its core is zero (every principal strain compressive) and the core stays
    intact; the matrix around it, in hoop tension, may crack."""
    run, psi = shrinking_particle
    shear = E / (2 * (1 + NU))
    threshold = 3.0 * TOUGHNESS * 1e-3 / (16.0 * LENGTH)
    stress = -np.sqrt(2.0 * threshold * 6.0 * shear)
    eigenstrain = -stress * 2.0 * (1.0 - NU) / E
    carry, _, initial_drive = run(jnp.full(psi.shape, concentration_for(eigenstrain)))
    core = psi > 0.99
    assert float(np.max(np.asarray(initial_drive)[core])) < 1e-9 * threshold
    assert float(np.max(np.asarray(carry["state"]["damage"])[core])) == 0.0


def test_spectral_drive_is_refused_in_3d():
    cell = {**CELL, "size": [8.0, 8.0, 8.0], "shape": [64, 64, 64], "particles": [[4.0, 4.0, 4.0, 1.0]]}
    with pytest.raises(ConfigError, match="fracture_drive"):
        validate_run({"scenario": cell, "solver": {"dt": 1e-3}, "output": {}})
    validate_run({"scenario": {**cell, "fracture_drive": "volumetric_deviatoric"}, "solver": {"dt": 1e-3},
                  "output": {}})


def ring_geometry(grid: Grid):
    """All-particle geometry (``psi = 1``): plain Cahn-Hilliard transport on the periodic grid."""
    ones = jnp.ones(grid.shape)
    faces = tuple(jnp.ones(tuple(n + (b == a) for b, n in enumerate(grid.shape))) for a in range(grid.ndim))
    zeros = jnp.zeros(grid.shape)
    return sw.Geometry(psi=ones, psi_weight=ones, psi_faces=faces, surface=zeros, collector=zeros, matrix=zeros,
                       normal=(zeros, zeros), in_particles=ones > 0, in_electrolyte=ones < 0,
                       interface_band=ones < 0, surface_band=ones < 0, particle_volume=1.0, electrode_area=1.0,
                       reference_weight=1.0)


def test_cracked_faces_cut_the_li_flux_of_a_ring():
    """A periodic 1D ring of 32 cells (D = 1, chi = 0, no gradient energy: dc/dt = div(D c(1-c) grad ln(c/(1-c))))
    with a steady source +q in cell 4 and a sink -q in cell 12. The flux Q = q h splits over the two arcs in
    inverse proportion to their face resistances sum h / w_f: intact, 8 and 24 faces, so J_1 = 24/32 Q; one cell
    at d = 1/2 in the short arc puts two faces at w = 1/4 (resistance 6 + 8 = 14), J_1 = 24/38 Q; a fully cracked
    band (d = 1) cuts it, J_1 = 0 and the long arc carries all of Q."""
    n, h = 32, 1.0 / 32
    grid = Grid((n, 2), (h, h))
    geometry = ring_geometry(grid)
    p = sw.Parameters(diffusivity=1.0, kappa=0.0, chi=0.0, beta=0.0, f=0.0, alpha=0.5, reaction_speed=0.0,
                      elastic_coupling=0.0, c_initial=0.5, open_circuit_potential=0.0)
    basis = SpectralBasis(grid, Boundary.uniform(2, "periodic"))
    q = 0.01 / h
    source = jnp.zeros(grid.shape).at[4].set(q).at[12].set(-q)
    dt = 2e-3

    @jax.jit
    def steady_fluxes(damage):
        crack = sw.crack_weights(damage, grid)

        def body(state, _):
            c, change = state
            mu = sw.chemical_potential(c, None, p, geometry, grid, False, crack)
            c, change, _ = sw.cahn_hilliard_update(c, mu, source, dt, change, p, geometry, grid, basis, (1.0, 0.0),
                                                   crack)
            return (c, change), None

        start = jnp.full(grid.shape, 0.5)
        (c, _), _ = jax.lax.scan(body, (start, jnp.zeros(grid.shape)), None, length=1500)
        mu = sw.chemical_potential(c, None, p, geometry, grid, False, crack)
        return sw.li_fluxes(c, mu, p, geometry, grid, crack)[0][:, 0], c

    total = q * h
    cases = {"intact": (jnp.zeros(grid.shape), 24 / 32),
             "half": (jnp.zeros(grid.shape).at[8].set(0.5), 24 / 38),
             "cracked": (jnp.zeros(grid.shape).at[7:9].set(1.0), 0.0)}
    for name, (damage, share) in cases.items():
        flux, c = steady_fluxes(damage)
        flux = np.asarray(flux)
        short, long = flux[6], flux[20]  # low faces of cells 6 (short arc, 4 -> 12) and 20 (long arc)
        assert short - long == pytest.approx(total, rel=1e-6), name  # steady: the source leaves by the two arcs
        assert short == pytest.approx(share * total, rel=5e-3, abs=1e-9 * total), name
        assert float(jnp.min(c)) > 0.0 and float(jnp.max(c)) < 1.0


def test_damage_length_must_be_resolved():
    with pytest.raises(ConfigError, match="damage_length"):
        validate_run({"scenario": {**CELL, "damage_length": 0.1}, "solver": {"dt": 1e-3}, "output": {}})
