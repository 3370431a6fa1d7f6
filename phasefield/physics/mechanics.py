"""Quasi-static small-strain mechanics of the phase-field models: moduli mixing and one solve-and-return.

Shared by the models that carry stresses (swelling, dendrite_solid, fracture). Each time step does::

    C(x)  = sum_p w_p(x) C_p  (+ floor C_stiff)                     (Voigt mix, mix_moduli)
    div C : (E + sym grad u~ - eps* - eps_p) = 0                    (one warm-started solve)
    sigma = radial_return(sigma_trial, mu, sigma_Y)                 (J2, plastic flow lags one step)
    eps_p <- eps_p + d eps_p

(:func:`solve_and_return`). Plastic flow lags one step: the solve sees the plastic strain of the
previous returns, and the return of this step's stress feeds the next solve. Under a prescribed mean
stress (stack pressure) the plain return moves the mean stress off the load; ``hold_mean_stress``
returns under the load instead (:func:`return_under_load`: one more uniform strain in the loaded
components, so the returned stress keeps the prescribed means exactly). A model that wants
plastic equilibrium at one load instead iterates (:func:`phasefield.physics.plasticity.plastic_equilibrium`).

Generalized plane strain (2D only, ``generalized=True``): instead of ``eps_zz = 0`` the total
``eps_zz`` is one uniform unknown ``e_zz`` with ``<sigma_zz> = 0`` (free fibres). It enters the
plane-strain solver as the eigenstrain offset ``eps*_zz - e_zz``; after a first solve one Newton
correction ``e_zz -= <sigma_zz> / <lam + 2 mu>`` and a second solve, warm-started from the first,
follow. The correction is exact for uniform moduli with the in-plane mean strains held; otherwise
(free in-plane mean stresses, contrast) ``<sigma_zz>`` is reduced, not zeroed, and since ``e_zz`` is
carried from step to step it keeps converging over the steps.

Every value (moduli, yield stresses, eigenstrains, loads, tolerance) may be traced: the functions
are jit-, vmap- and grad-friendly; the grid, the *set* of stress-prescribed load components,
``generalized``, ``max_iterations`` and ``shear_mean`` are structure.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from phasefield.grid import Grid
from phasefield.operators.elasticity import Elasticity, solve_elasticity
from phasefield.physics.plasticity import add_strains, radial_return


def mix_moduli(weights, moduli, floor=0.0):
    """Voigt mix of per-phase Lame pairs plus a residual stiffness for voids and cracks.

    ``lam = floor lam_s + sum_p w_p lam_p`` and ``mu = floor mu_s + sum_p w_p mu_p``, with ``weights``
    one interpolation field per phase (e.g. ``h(xi)`` and ``1 - h(xi)``; ``psi (1 - c)`` and ``psi c``
    for a particle whose stiffness follows its Li content; a damaged phase carries ``g(d) h``),
    ``moduli`` one ``(lam_p, mu_p)`` pair per phase (numbers or traced scalars, in the stress unit)
    and ``s`` the phase of largest shear modulus. ``floor`` (1e-6 to 1e-3) keeps the stiffness
    positive where every weight vanishes, with the stiff phase's Poisson ratio; ``floor = 0`` adds
    nothing (the sum is then exactly ``sum_p w_p C_p``).
    """
    if len(weights) != len(moduli):
        raise ValueError(f"{len(weights)} weight fields for {len(moduli)} phases")
    lam = sum(w * m[0] for w, m in zip(weights, moduli))
    mu = sum(w * m[1] for w, m in zip(weights, moduli))
    if not (isinstance(floor, (int, float)) and floor == 0):
        lams = jnp.stack([jnp.asarray(m[0]) for m in moduli])
        mus = jnp.stack([jnp.asarray(m[1]) for m in moduli])
        stiff = jnp.argmax(mus)  # traced moduli: the stiff phase is chosen on the device
        lam, mu = floor * lams[stiff] + lam, floor * mus[stiff] + mu
    return jnp.asarray(lam), jnp.asarray(mu)


def phase_dilatation(dilatation, phase_moduli, lam, mu):
    """Cell eigenstrain of a dilatation carried by one phase only, under the equal-strain (Voigt) mix.

    The phase-wise stress ``sigma = sum_p w_p C_p (eps - eps*_p)`` with ``eps*_s = e I / w_s`` in the
    swelling phase ``s`` (``dilatation = e``: its eigenstrain times its weight, e.g. ``psi e*``) and none
    in the others is ``C (eps - eps*)`` with the mixed moduli ``C`` (``lam``, ``mu``: :func:`mix_moduli`)
    and ``eps* = C^-1 C_s e I = (K_s / K) e I``, ``K = lam + 2 mu / 3`` (isotropic phases).
    ``phase_moduli``: the swelling phase's ``(lam_s, mu_s)``. Returns the normal components (dict).
    A stiff phase in a soft one then swells fully inside the diffuse interface (``K_s / K -> 1 / w_s``),
    where ``w_s e`` with Voigt moduli would make a stiff skin that swells too little.
    """
    lam_s, mu_s = phase_moduli
    strain = dilatation * (lam_s + 2.0 * mu_s / 3.0) / (lam + 2.0 * mu / 3.0)
    return {"xx": strain, "yy": strain, "zz": strain}


def series_yield_stress(weight, phase_yield, other_yield):
    """Reuss (series) mix of yield stresses ``1/Y = w/Y_1 + (1 - w)/Y_2`` of two phases.

    Smooth across a diffuse interface: with an elastic second phase (``Y_2`` huge or ``inf``) it is
    ``Y_1 / w``, so no cell switches abruptly from elastic to plastic as an interface passes.
    """
    return 1.0 / (weight / phase_yield + (1.0 - weight) / other_yield)


class WarmStart(NamedTuple):
    """The last elasticity solution in the form :func:`solve_elasticity` (``initial=``) reads.

    displacement: ``(ndim, *grid.shape)``; mean_strain: dict of the loadable mean strains.
    A model keeps it in its carry's ``history`` (``warm_start._asdict()``, a plain dict for
    checkpoints) and rebuilds it with ``WarmStart(**history[...])``.
    """

    displacement: jax.Array
    mean_strain: dict

    @classmethod
    def of(cls, solution: Elasticity) -> "WarmStart":
        return cls(solution.displacement, solution.mean_strain)


class MechanicsStep(NamedTuple):
    """What :func:`solve_and_return` gives.

    solution:             the equilibrium solve (its ``stress`` is before the return; the next
                          step warm-starts from it, :meth:`WarmStart.of`);
    stress:               the returned stress (on the yield surface where the solve exceeded it);
    plastic_strain:       the lagged plastic strain plus this return's increment (the next solve's);
    equivalent_increment: ``sqrt(2/3 d eps_p : d eps_p)`` of this return (accumulates to the
                          equivalent plastic strain);
    axial_strain:         the uniform total ``eps_zz`` (generalized plane strain; the input otherwise);
    iterations:           CG iterations of the solve(s) (int32).
    """

    solution: Elasticity
    stress: dict
    plastic_strain: dict
    equivalent_increment: jax.Array
    axial_strain: jax.Array
    iterations: jax.Array


@jax.named_call
def solve_and_return(lam, mu, yield_stress, grid: Grid, eigenstrain: dict, plastic_strain: dict,
                     mean_strain=None, mean_stress=None, warm_start: WarmStart | None = None,
                     axial_strain=0.0, generalized: bool = False, tolerance=1e-8, max_iterations: int = 2000,
                     shear_mean: str = "arithmetic", hold_mean_stress: bool = False, slabs=None) -> MechanicsStep:
    """One elasticity solve with eigenstrain ``eigenstrain + plastic_strain`` and one radial return.

    lam, mu:        Lame fields (:func:`mix_moduli`; degraded moduli for fracture), stress unit;
    yield_stress:   per-cell J2 yield stress (huge or ``inf``: elastic);
    eigenstrain:    dict of component fields (chemical, thermal, deposition misfit), without
                    the plastic strain;
    plastic_strain: the lagged plastic strain (dict);
    mean_strain, mean_stress: the macroscopic load (:func:`solve_elasticity`);
    warm_start:     the previous solution (``None``: from zero);
    axial_strain:   generalized plane strain: the carried uniform ``eps_zz`` (module notes);
    generalized:    2D only: ``<sigma_zz> = 0`` instead of ``eps_zz = 0``;
    hold_mean_stress: return under the macroscopic load (:func:`return_under_load`): the prescribed
                    mean stresses (and ``<sigma_zz> = 0`` when ``generalized``) hold after the return,
                    not only after the solve; ``solution`` then carries the uniform strain the
                    return added (its mean strain, strain and stress; the stress is the return's trial);
    slabs:          fields split along x over devices (:func:`solve_elasticity`; ``None``: one device).
    """
    if generalized and grid.ndim != 2:
        raise ValueError("generalized plane strain is a 2D option")
    axial_strain = jnp.asarray(axial_strain)

    def solve(axial, initial):
        eigen = dict(eigenstrain)
        if generalized:  # the offset before the plastic strain is added (the order of the sums is fixed)
            eigen["zz"] = eigen.get("zz", 0.0) - axial
        return solve_elasticity(lam, mu, grid, add_strains(eigen, plastic_strain), mean_strain, mean_stress,
                                initial=initial, tolerance=tolerance, max_iterations=max_iterations,
                                shear_mean=shear_mean, slabs=slabs)

    solution = solve(axial_strain, warm_start)
    iterations = solution.iterations
    if generalized:
        axial_strain = axial_strain - jnp.mean(solution.stress["zz"]) / jnp.mean(lam + 2.0 * mu)
        solution = solve(axial_strain, solution)
        iterations = iterations + solution.iterations
    if hold_mean_stress:
        targets = {n: v for n, v in (mean_stress or {}).items()}
        if generalized:
            targets["zz"] = 0.0
        solution, returned, offset = return_under_load(solution, lam, mu, yield_stress, targets)
        if generalized:
            axial_strain = axial_strain + offset["zz"]
    else:
        returned = radial_return(solution.stress, mu, yield_stress)
    return MechanicsStep(
        solution=solution,
        stress=returned.stress,
        plastic_strain=add_strains(plastic_strain, returned.plastic_increment),
        equivalent_increment=returned.equivalent_increment,
        axial_strain=axial_strain,
        iterations=iterations,
    )


def return_under_load(solution, lam, mu, yield_stress, targets: dict, iterations: int = 60):
    """Radial return of ``solution.stress`` with the mean stresses of ``targets`` held.

    The return relaxes the deviator at fixed total strain, which moves the mean stress off the load the
    solve imposed (by ``<2 mu d eps_p>``: tens of MPa against a stack pressure of 10 MPa once particles
    yield). Here the total strain of every cell takes one more uniform part ``dE`` over the loaded
    components (the macroscopic strain is free in them), and ``dE`` is found so that the returned
    stress has the prescribed means: ``<R(sigma + C : dE)>_k = targets_k``. The map is monotone (the
    elastic-plastic tangent is positive, at least the bulk part, and below the elastic one), so the
    fixed point ``dE += K^-1 (targets - <R(.)>)`` with ``K`` the mean elastic stiffness of the loaded
    components converges; ``iterations`` passes (each pointwise) reach round-off. Within the cells the
    returned stress is on the yield surface wherever it was exceeded, as with a plain return.

    ``targets``: ``{component: mean stress}`` (``zz`` allowed in 2D: the generalized plane-strain axial
    strain). Returns ``(solution with dE added, Return, dE)``.
    """
    names = tuple(targets)
    normal = [n[0] == n[1] for n in names]
    lam_mean, mu_mean = jnp.mean(lam), jnp.mean(mu)
    stiffness = jnp.asarray([[lam_mean * (a and b) + 2.0 * mu_mean * (i == j) for j, b in enumerate(normal)]
                             for i, a in enumerate(normal)])
    inverse = jnp.linalg.inv(stiffness)
    goal = jnp.asarray([targets[n] for n in names], dtype=jnp.result_type(lam))

    def loaded(offset):
        trace = sum(offset[i] for i, n in enumerate(names) if normal[i])
        stress = {}
        for k, v in solution.stress.items():
            extra = lam * trace if k[0] == k[1] else 0.0
            if k in names:
                extra = extra + 2.0 * mu * offset[names.index(k)]
            stress[k] = v + extra
        return stress

    def update(_, offset):
        returned = radial_return(loaded(offset), mu, yield_stress)
        means = jnp.stack([jnp.mean(returned.stress[n]) for n in names])
        return offset + inverse @ (goal - means)

    # body under jax.checkpoint: reverse mode keeps each iteration's offset, not its radial return's fields
    offset = jax.lax.fori_loop(0, iterations, jax.checkpoint(update, prevent_cse=False),
                               jnp.zeros(len(names), goal.dtype))
    trial = loaded(offset)
    returned = radial_return(trial, mu, yield_stress)
    added = {n: offset[i] for i, n in enumerate(names)}
    mean_strain = {k: v + added.get(k, 0.0) for k, v in solution.mean_strain.items()}
    strain = {k: v + added[k] if k in added and k in solution.mean_strain else v for k, v in solution.strain.items()}
    mean_stress = {k: jnp.mean(trial[k]) if k in trial else v for k, v in solution.mean_stress.items()}
    solution = solution._replace(mean_strain=mean_strain, strain=strain, stress=trial, mean_stress=mean_stress)
    return solution, returned, added
