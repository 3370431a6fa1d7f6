"""The electrolyte between Li surfaces and a counter electrode as a resistor network (physics.md 5.2, item 3).

Geometry: x is the stack axis, walled (the anode face at ``x = 0``, the counter electrode at ``x = L_x``); every other
axis is periodic. Li surfaces are electrodes: the anode face (electrode 0, the low x wall) and ``M`` sets of cells
(a filament's Li, each its own electrode). The electrolyte in between conducts ions with a per-cell conductivity
``sigma`` (S/m; :func:`damaged_conductivity` lowers it where the ceramic is broken). Charge conservation,
``div(sigma grad phi) = 0``, is discretised in conservative form: face conductances ``1 / (r_i + r_j)`` from the
half-cell resistances ``r = (h_a / 2) / (sigma A_a)`` of the two cells (``A_a`` the face area), an electrode cell
contributing none (its surface lies on its faces), a face between two electrodes none at all (metal to metal).

Each electrode ``j`` has its unit field ``w_j``: 1 on electrode ``j``, 0 on the others and on the counter
electrode, harmonic in between (conjugate gradients on the electrolyte cells, preconditioned by the exact inverse of
the uniform slab's operator without electrodes: sine transform along x, Fourier across; the electrodes and the
damage are what it misses. To ``TOLERANCE`` with an 8 um filament and an insulating crack 2 um ahead of it: 18 / 26
/ 32 iterations at 128^2 / 256^2 / 512^2, 0.02 / 0.12 / 0.64 s for both fields, where Jacobi took 475 / 929 / 1806
iterations to 1e-10, 0.09 / 0.63 / 9.4 s, without the crack: ``experiments/filament_timing.py``). The
conductance matrix is their discrete Dirichlet form, ``K_kj = sum_faces G (grad w_k)(grad w_j)``: the current
leaving electrode ``k`` when ``j`` is held at 1 V (symmetric, an M-matrix; positive definite unless an electrode has
no cells, whose row and column are then 0; stationary in the solves' error).
With the electrolyte potential ``psi_j`` at each electrode surface and ``V_c`` at the counter electrode, the
plating current into electrode ``k`` is ``I_k = sum_j K_kj (V_c - psi_j)`` (superposition; the fields are linear).

Treating each surface as one electrode of uniform overpotential is the lumped kinetics' own premise (one
current density per Li surface); it is close where the Wagner length ``sigma R_ct`` exceeds the surfaces (50 um
for LLZO at 10 ohm cm^2, filaments of a few um). The metal is one conductor at potential 0, so a surface's
overpotential is ``eta_k = -psi_k`` and the cell voltage (Li against a reversible counter electrode) is
``-V_c``::

    eta = V + R I,   I_k = A_k i_k(eta_k),   R = K^-1                         (:func:`network_deposits`)

``V`` the cell voltage (< 0 plates), ``A_k`` the surface areas and ``i_k`` their Butler-Volmer current densities.

Units: lengths um, conductivity S/m, conductances A/m^2 um^(d-1) per V (a current density times an area in um,
per unit thickness in 2D: :data:`CONDUCTANCE_UNIT`), potentials V.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.grid import DIRICHLET, PERIODIC, Boundary, Grid, Side
from phasefield.operators.krylov import pcg
from phasefield.operators.spectral import SpectralBasis

CONDUCTANCE_UNIT = 1e6  # A/m^2 per (S/m x V/um): sigma (S/m) times a potential gradient in V/um
CONDUCTIVITY_FLOOR = 1e-6  # a broken cell conducts at least this fraction of the intact ceramic (keeps K definite)
TOLERANCE = 1e-8  # CG: the unit fields' relative residual (preconditioned dual norm); K is stationary in their error:
# 2e-9 relative at 1e-8 (18 iterations at 128^2 with an insulating crack 2 um ahead of the Li), 2e-13 at 1e-10 (45)
NEWTON_ITERATIONS = 100
NEWTON_TOLERANCE = 1e-13  # V in the overpotentials; relative in the Li volumes (network_deposits)
NEWTON_BOUND = 1.9  # V: iterates stay where the plating current's exponentials are not clipped (80 RT/F = 2.05 V)


def damaged_conductivity(damage, conductivity, crack_conductivity):
    """``sigma(d) = (1 - d) sigma + d sigma_crack`` (S/m; physics.md 5.2 item 3 without Li: the Li is an electrode
    here), at least ``CONDUCTIVITY_FLOOR`` times the larger of the two."""
    damage = jnp.clip(damage, 0.0, 1.0)
    floor = CONDUCTIVITY_FLOOR * jnp.maximum(conductivity, crack_conductivity)
    return jnp.maximum((1.0 - damage) * conductivity + damage * crack_conductivity, floor)


def _conductances(sigma, electrodes, grid: Grid):
    """Face conductances: per axis those to the +1 neighbour (``(ndim,) + shape``; the last x row's is 0: the wall),
    and of the anode (x = 0) and counter (x = L_x) walls (``shape`` each, 0 away from them)."""
    metal = jnp.any(electrodes > 0, axis=0)
    high = []
    for axis, h in enumerate(grid.spacing):
        area = float(np.prod([s for b, s in enumerate(grid.spacing) if b != axis]))
        r = jnp.where(metal, 0.0, 0.5 * h / (CONDUCTANCE_UNIT * sigma * area))
        g = 1.0 / jnp.maximum(r + jnp.roll(r, -1, axis), 1e-300)
        g = jnp.where(metal & jnp.roll(metal, -1, axis), 0.0, g)
        if axis == 0:
            g = g.at[-1].set(0.0)
        high.append(g)
    area = float(np.prod(grid.spacing[1:]))
    r_wall = 0.5 * grid.spacing[0] / (CONDUCTANCE_UNIT * sigma * area)
    anode = jnp.zeros_like(sigma).at[0].set(jnp.where(metal[0], 0.0, 1.0 / r_wall[0]))
    counter = jnp.zeros_like(sigma).at[-1].set(1.0 / r_wall[-1])  # a Li cell there conducts as its ceramic (the
    # filament stops at the short-circuit gap before it)
    return tuple(high), anode, counter


def _differences(u, axis: int):
    """``u_i - u_{i+1}`` on the faces to the +1 neighbour (periodic wrap; the x wrap is masked by its conductance)."""
    return u - jnp.roll(u, -1, axis)


def uniform_slab_basis(grid: Grid, dtype=jnp.float64, slabs=None) -> SpectralBasis:
    """The transforms that diagonalise the uniform slab's operator: homogeneous Dirichlet walls along x (the
    electrodes' faces), periodic across (``slabs``: the grid split along x)."""
    across = (Side(PERIODIC), Side(PERIODIC))
    return SpectralBasis(grid, Boundary(((Side(DIRICHLET), Side(DIRICHLET)),) + (across,) * (grid.ndim - 1)), dtype,
                         slabs)


def electrode_conductances(sigma, electrodes, grid: Grid, tolerance=TOLERANCE, max_iterations: int = 1000,
                           slabs=None):
    """Conductance matrix ``K`` (``(M + 1, M + 1)``, A/m^2 um^(d-1) per V) of the anode face (index 0) and the
    ``M`` cell electrodes ``electrodes`` (``(M,) + grid.shape``, 1 on an electrode's cells) against the counter
    electrode, with ``sigma`` (S/m per cell). Returns ``K``, the unit fields ``w`` (``(M + 1,) + grid.shape``) and
    the largest CG iteration count. ``slabs``: the fields split along x (the preconditioner transposes)."""
    electrodes = jnp.asarray(electrodes, sigma.dtype)
    high, anode, counter = _conductances(sigma, electrodes, grid)
    free = 1.0 - jnp.minimum(jnp.sum(electrodes, axis=0), 1.0)
    diagonal = anode + counter + sum(g + jnp.roll(g, 1, axis) for axis, g in enumerate(high))
    basis = uniform_slab_basis(grid, sigma.dtype, slabs)
    inverse_symbol = 1.0 / (-grid.cell_volume * basis.laplacian_symbol)  # of a unit conductivity: PCG is scale-free

    def precondition(r):  # SPD: the uniform slab's inverse on the electrolyte cells, identity on the electrodes
        return free * basis.inverse(basis.forward(free * r) * inverse_symbol) + (1.0 - free) * r

    def operator(x):  # the electrolyte block, identity on electrode cells (their values are known)
        y = free * x
        out = diagonal * y
        for axis, g in enumerate(high):
            out = out - g * jnp.roll(y, -1, axis) - jnp.roll(g * y, 1, axis)
        return free * out + (1.0 - free) * x

    def neighbours_of(values):  # sum_faces G values_neighbour on every cell
        out = jnp.zeros_like(values)
        for axis, g in enumerate(high):
            out = out + g * jnp.roll(values, -1, axis) + jnp.roll(g * values, 1, axis)
        return out

    fixed = jnp.concatenate([jnp.zeros((1,) + grid.shape, sigma.dtype), electrodes])  # each unit field's electrode
    wall = jnp.arange(fixed.shape[0]) == 0  # the anode wall at 1 for field 0

    def unit_field(values, at_anode):
        rhs = free * (neighbours_of(values) + jnp.where(at_anode, anode, 0.0))
        x, stats = pcg(operator, rhs, jnp.zeros_like(rhs), precondition, tolerance, max_iterations)
        return free * x + values, stats.iterations

    # one solve after the other (a vmap of the slabs' transposes compiled to mixed complex precisions)
    solved = [unit_field(fixed[j], wall[j]) for j in range(fixed.shape[0])]
    fields, iterations = jnp.stack([f for f, _ in solved]), jnp.stack([i for _, i in solved])
    wall_values = wall.astype(sigma.dtype)
    form = jnp.zeros((fixed.shape[0],) * 2, sigma.dtype)
    for axis, g in enumerate(high):
        d = jax.vmap(lambda u: _differences(u, axis))(fields)
        form = form + jnp.einsum("i...,j...,...->ij", d, d, g)
    at_anode = fields - wall_values.reshape((-1,) + (1,) * grid.ndim)
    form = form + jnp.einsum("i...,j...,...->ij", at_anode, at_anode, anode)
    form = form + jnp.einsum("i...,j...,...->ij", fields, fields, counter)
    return 0.5 * (form + form.T), fields, jnp.max(iterations)


def network_deposits(cell_voltage, resistance, areas, current_of, stack_pressure, li_volume, base_volume,
                     compliance, bulk_modulus, dt, rate, pressure):
    """Backward-Euler deposit into ``N`` filaments whose surfaces share the network, coupled with their pressures.

    Unknowns: the overpotentials ``eta`` (``(N + 1,)``, the anode face first) and per filament ``z_j``, its Li
    pressure ``p_j = max(z_j, 0)`` where the Li fills its crack, else ``-z_j`` its unfilled volume over ``C_jj``::

        eta - V - R A i(eta, (p_s, p)) = 0                                   (the network)
        W_j(z) - V0_j - dt rate A_j i(eta_j, p_j) = 0                        (each filament's Li volume)
        W_j(z) = (B_j + sum_k C_jk p_k)(1 + p_j / K) + C_jj min(z_j, 0)

    (``V0`` the Li volumes at the step's start, ``B + C p`` the cracks' volumes linearised by their compliance
    matrix ``C`` about ``pressure``, ``K`` the Li bulk modulus, ``p_s`` the stack pressure on the anode face). The
    surfaces couple through the shared resistance ``R`` and the cracks' compliance, so no surface is solved alone
    (a Jacobi sweep over them need not converge when many share the slab's resistance). Semismooth Newton from the
    step's start (``eta = V``, ``z`` the start's pressures or underfill; the derivative of the branch of ``z`` it is
    on), its ``eta`` kept within :data:`NEWTON_BOUND`, a step halved while it raises the largest scaled residual
    or makes it NaN (at most 30 times; then taken). It stops when that residual or the last update (``eta`` in V,
    ``W`` relative to the volume scale) is at most :data:`NEWTON_TOLERANCE`, or after :data:`NEWTON_ITERATIONS`.
    The volume scale is the largest of the start's Li volumes and cracks' volumes (a crack that holds no Li yet
    still has its stress-free volume). Li volumes stay >= 0: a filament whose kinetics would strip more Li than it
    holds this step is depleted (``W_j = 0``, its current the one that strips all its Li, ``-V0_j / (dt rate)``,
    in the network), an active set updated after each Newton solve until it holds (at most ``N + 1`` solves).

    Returns the Li volumes ``W(z)``, the overpotentials, the surfaces' currents ``A i`` (A/m^2 um), the network's
    residual (V) and the volumes' (relative to the volume scale)."""
    count = li_volume.shape[0]
    diagonal = jnp.diagonal(compliance)
    crack = base_volume + compliance @ pressure
    scale = jnp.maximum(jnp.max(jnp.abs(li_volume), initial=1e-300), jnp.max(jnp.abs(crack), initial=0.0))
    cell_voltage = jnp.asarray(cell_voltage, li_volume.dtype)
    pressures = lambda z: jnp.concatenate([jnp.reshape(stack_pressure, (1,)), jnp.maximum(z, 0.0)])  # noqa: E731

    def volumes(z):
        p = jnp.maximum(z, 0.0)
        return (base_volume + compliance @ p) * (1.0 + p / bulk_modulus) + diagonal * jnp.minimum(z, 0.0)

    emptied = -li_volume / jnp.maximum(dt * rate, jnp.finfo(li_volume.dtype).tiny)  # strips a filament's Li

    def currents(eta, z, depleted):
        """The surfaces' currents ``A i``; a depleted filament's the one that strips all its Li this step."""
        current = areas * current_of(eta, pressures(z))
        return current.at[1:].set(jnp.where(depleted, emptied, current[1:]))

    def residuals(eta, z, depleted):  # a depleted filament's volume residual is then W_j itself
        current = currents(eta, z, depleted)
        network = eta - cell_voltage - resistance @ current
        return network, (volumes(z) - li_volume - dt * rate * current[1:]) / scale

    def merit(eta, z, depleted):
        network, deposit = residuals(eta, z, depleted)
        return jnp.maximum(jnp.max(jnp.abs(network)), jnp.max(jnp.abs(deposit), initial=0.0))

    def jacobian(eta, z, depleted):
        p, filled = pressures(z), (z > 0.0).astype(z.dtype)
        ones = jnp.ones_like(eta)
        kinetic = jnp.concatenate([jnp.ones(1, eta.dtype), 1.0 - depleted.astype(eta.dtype)])
        di_deta = jax.jvp(lambda e: current_of(e, p), (eta,), (ones,))[1] * areas * kinetic
        di_dp = jax.jvp(lambda q: current_of(eta, q), (p,), (ones,))[1][1:] * areas[1:] * filled * kinetic[1:]
        crack = base_volume + compliance @ p[1:]
        dw_dz = (compliance * filled[None, :] * (1.0 + p[1:, None] / bulk_modulus)
                 + jnp.diag(filled * crack / bulk_modulus + (1.0 - filled) * diagonal))
        top = jnp.concatenate([jnp.eye(count + 1) - resistance * di_deta[None, :], -resistance[:, 1:] * di_dp[None, :]],
                              axis=1)
        bottom = jnp.concatenate([jnp.zeros((count, 1)), -dt * rate * jnp.diag(di_deta[1:]),
                                  dw_dz - dt * rate * jnp.diag(di_dp)], axis=1) / scale
        return jnp.concatenate([top, bottom], axis=0)

    def newton(carry):
        eta, z, _, iterations, current_merit, depleted = carry
        network, deposit = residuals(eta, z, depleted)
        step = jnp.linalg.solve(jacobian(eta, z, depleted), -jnp.concatenate([network, deposit]))

        def trial(fraction):
            following = jnp.clip(eta + fraction * step[:count + 1], -NEWTON_BOUND, NEWTON_BOUND)
            return following, z + fraction * step[count + 1:]

        def worse(halving):
            fraction, _ = halving
            return ~(merit(*trial(fraction), depleted) <= current_merit) & (fraction > 2.0**-30)  # NaN is worse

        fraction, _ = jax.lax.while_loop(worse, lambda h: (0.5 * h[0], h[1]), (jnp.asarray(1.0, eta.dtype), 0))
        following_eta, following_z = trial(fraction)
        following_volumes = volumes(following_z)
        change = jnp.maximum(jnp.max(jnp.abs(following_eta - eta)),
                             jnp.max(jnp.abs(following_volumes - volumes(z)), initial=0.0)
                             / jnp.maximum(scale, jnp.max(jnp.abs(following_volumes), initial=0.0)))
        return (following_eta, following_z, change, iterations + 1, merit(following_eta, following_z, depleted),
                depleted)

    def unsettled(carry):
        _, _, change, iterations, current_merit, _ = carry
        return (change > NEWTON_TOLERANCE) & (current_merit > NEWTON_TOLERANCE) & (iterations < NEWTON_ITERATIONS)

    def solve(carry):
        """Newton with the depleted set of ``carry``, then that set updated: a filament whose volume went negative
        joins it, one whose kinetics at the solution would no longer strip all its Li leaves it."""
        eta, z, depleted, rounds, _ = carry
        start = (eta, z, jnp.asarray(jnp.inf, eta.dtype), 0, merit(eta, z, depleted), depleted)
        eta, z, _, _, _, _ = jax.lax.while_loop(unsettled, newton, start)
        kinetic = li_volume + dt * rate * areas[1:] * current_of(eta, pressures(z))[1:]
        following = jnp.where(depleted, kinetic <= 0.0, volumes(z) < 0.0)
        return eta, z, following, rounds + 1, jnp.any(following != depleted)

    def unsettled_set(carry):
        return carry[4] & (carry[3] <= count)

    z = jnp.where(pressure > 0.0, pressure, (li_volume - crack) / diagonal)
    eta = jnp.full(count + 1, jnp.clip(cell_voltage, -NEWTON_BOUND, NEWTON_BOUND), li_volume.dtype)
    none = jnp.zeros(count, bool)
    eta, z, depleted, _, _ = jax.lax.while_loop(unsettled_set, solve, (eta, z, none, 0, jnp.asarray(True)))
    network, deposit = residuals(eta, z, depleted)
    return (jnp.where(depleted, 0.0, volumes(z)), eta, currents(eta, z, depleted), jnp.max(jnp.abs(network)),
            jnp.max(jnp.abs(deposit), initial=0.0))


def electrolyte_potential(fields, cell_voltage, overpotentials):
    """The electrolyte potential (V, the Li metal at 0): ``phi = V_c + sum_j (psi_j - V_c) w_j`` with ``V_c = -V``
    and ``psi_j = -eta_j`` (``fields`` the unit fields of :func:`electrode_conductances`)."""
    counter = -cell_voltage
    weights = (-overpotentials - counter).reshape((-1,) + (1,) * (fields.ndim - 1))
    return counter + jnp.sum(weights * fields, axis=0)
