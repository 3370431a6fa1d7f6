"""A Li-filled crack in a ceramic electrolyte, lumped (physics.md 5.2 option 1): the filament as a pressurised crack.

The Li in a crack is connected metal at the electrode potential. It flows along the crack (Li yields at ~1 MPa,
three orders of magnitude below the pressures that crack a ceramic), so one filament carries one uniform pressure
``p``. Its amount is the volume ``V_Li`` the deposited Li would have stress free (deposited charge times
``Omega_Li / F``); squeezed into the crack-opening volume ``V_c`` it is compressed elastically::

    p = K_Li (V_Li - V_c) / V_c   for V_Li > V_c,  else 0                       (Li bulk modulus K_Li)

(equivalently ``V_Li = V_c (1 + p / K_Li)``). ``V_c = V_ref + V_open``: the stress-free volume of the initial flaw
(depth times width) plus the opening of the diffuse crack, ``int d div u``, which depends on ``p`` through the
elastic solve. At fixed damage ``V_open(p) = V_open(p0) + C (p - p0)`` with the compliance ``C = dV_open/dp``
(exact for a crack under pressure alone: the split energy is homogeneous of degree two, so ``u`` scales with
``p``), which makes the balance a quadratic in ``p`` (:func:`li_pressure`).

Deposition into the crack follows Butler-Volmer with the mechanical overpotential (physics.md 4.2, form 1;
Klinsmann et al. 2019): Li under pressure ``p`` has its chemical potential raised by ``Omega_Li p``, so::

    i = i0 [ exp(-alpha f eta) exp(-alpha Omega p / RT) - exp((1 - alpha) f eta) exp((1 - alpha) Omega p / RT) ]
      = i0 [ exp(-alpha f eta_eff) - exp((1 - alpha) f eta_eff) ],   eta_eff = eta + Omega p / F

(``i > 0`` plates, ``eta < 0`` cathodic, ``f = F / RT``). A filled crack slows its own plating and stops at the
equilibrium pressure ``p_max = F |eta| / Omega_Li`` (7.42 MPa per mV). It opens the crack further when
``p_max`` exceeds the pressure at which the crack grows: for an edge flaw of depth ``a`` under uniform face
pressure ``K_I = 1.12 p sqrt(pi a)`` (centre crack: no 1.12), so the onset overpotential is::

    eta_c(a) = Omega_Li K_Ic / (1.12 F sqrt(pi a)),   K_Ic = sqrt(E' G_c)              (:func:`onset_overpotential`)

Units: lengths um, pressures and moduli GPa, volumes per unit thickness um^2 (2D), current densities A/m^2,
potentials V, time s.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

FARADAY = 96485.33212  # C/mol
GAS_CONSTANT = 8.314462618  # J/(mol K)
EDGE_FACTOR = 1.1215  # K_I of an edge crack over p sqrt(pi a) (uniform face pressure, semi-infinite solid)
BISECTIONS = 60
COUPLED_SWEEPS = 200  # most iterations over coupled filaments (pressures: Newton or Gauss-Seidel; deposits: Jacobi)
COUPLED_TOLERANCE = 1e-14  # their relative residual


def mechanical_overpotential(pressure, molar_volume):
    """``Omega_Li p / F`` in V; ``pressure`` in GPa, ``molar_volume`` in m^3/mol (0.135 mV per MPa for Li)."""
    return molar_volume * pressure * 1e9 / FARADAY


def equilibrium_pressure(overpotential, molar_volume):
    """``p_max = F |eta| / Omega_Li`` (GPa): the pressure at which deposition at overpotential ``eta`` (V) stops."""
    return FARADAY * jnp.abs(overpotential) / molar_volume * 1e-9


def plating_current(overpotential, pressure, exchange_current, alpha, temperature, molar_volume):
    """Butler-Volmer plating current density (A/m^2, > 0 plates) of Li under ``pressure`` (GPa) at ``eta`` (V)::

        i = i0 [exp(-alpha f eta_eff) - exp((1 - alpha) f eta_eff)],  eta_eff = eta + Omega p / F
    """
    f = FARADAY / (GAS_CONSTANT * temperature)
    eta = overpotential + mechanical_overpotential(pressure, molar_volume)
    eta = jnp.clip(eta, -80.0 / f, 80.0 / f)  # keeps the exponentials finite (|eta| < 2 V)
    return exchange_current * (jnp.exp(-alpha * f * eta) - jnp.exp((1.0 - alpha) * f * eta))


def li_pressure(li_volume, base_volume, compliance, bulk_modulus):
    """Pressure (GPa) of ``li_volume`` (stress-free, um^2) in a crack of volume ``base + compliance * p``.

    Root of ``(B + C p)(1 + p / K) = V`` (``B`` = ``base_volume``, ``C`` = ``compliance`` um^2/GPa, ``K`` = Li bulk
    modulus, GPa), written without cancellation: ``p = 2 (V - B) / (b + sqrt(b^2 + 4 (C/K)(V - B)))``,
    ``b = C + B / K``; 0 when ``V <= B`` (the Li does not fill the crack).
    """
    excess = jnp.maximum(li_volume - base_volume, 0.0)
    b = compliance + base_volume / bulk_modulus
    return 2.0 * excess / (b + jnp.sqrt(b * b + 4.0 * compliance / bulk_modulus * excess))


def li_pressures(li_volume, base_volume, compliance, bulk_modulus, tolerance: float = COUPLED_TOLERANCE,
                 max_sweeps=COUPLED_SWEEPS):
    """Pressures (GPa, ``(N,)``) of ``N`` Li bodies in cracks coupled elastically: the root of
    ``F_j(p) = (B_j + sum_k C_jk p_k)(1 + p_j / K) - V_j = 0`` with ``p_j >= 0`` (``p_j = 0`` where the Li does not
    fill crack ``j``: ``F_j > 0`` there; ``C`` the compliance matrix, um^2/GPa: the opening of crack ``j`` under a
    unit pressure in ``k``, symmetric positive definite).

    One body: :func:`li_pressure`, exactly. Several: a nonlinear Gauss-Seidel sweep from ``p = 0`` (each pressure
    the single-crack root with the others' held), then iterations of semismooth Newton on the complementarity form
    ``Phi_j = min(p_j, F_j(p) / C_jj) = 0`` (a row of the identity where ``p_j`` is the smaller, held at 0; the row
    of ``dF_j/dp_k = C_jk (1 + p_j / K) + delta_jk (B_j + sum_k C_jk p_k) / K`` over ``C_jj`` elsewhere; the new
    pressures projected on ``p >= 0``). A Newton step is kept only if it lowers ``max |Phi|``; otherwise the
    iteration is a Gauss-Seidel sweep (without this, a full step can cycle: 3 in 10^4 random 5-crack systems).
    It stops when no pressure changes by more than ``tolerance`` times the largest, or after ``max_sweeps``
    iterations, the first sweep included. Newton converges in a few steps however strongly the cracks couple;
    sweeps alone converge at the rate ``|C_jk| / C_jj``, which tends to 1 for close flaws (4 cells apart, 3 um deep:
    200 sweeps left 4e-8). Returns the pressures and the last iteration's residual
    ``max_j |p_j - p_j,previous| / max_j |p_j|`` (0 for one body; above ``tolerance``, or NaN: unconverged)."""
    count = li_volume.shape[0]
    diagonal = jnp.diagonal(compliance)

    def sweep(pressure):
        for j in range(count):
            others = compliance[j] @ pressure - diagonal[j] * pressure[j]
            pressure = pressure.at[j].set(li_pressure(li_volume[j], base_volume[j] + others, diagonal[j],
                                                      bulk_modulus))
        return pressure

    first = sweep(jnp.zeros_like(li_volume))
    if count == 1:
        return first, jnp.zeros((), first.dtype)

    def complementarity(pressure):
        """``Phi = min(p, F / C_jj)``, the rows of its generalised Jacobian, and ``max |Phi|``."""
        opening = base_volume + compliance @ pressure
        balance = (opening * (1.0 + pressure / bulk_modulus) - li_volume) / diagonal
        slope = (compliance * (1.0 + pressure / bulk_modulus)[:, None]
                 + jnp.diag(opening / bulk_modulus)) / diagonal[:, None]
        held = pressure <= balance
        phi = jnp.where(held, pressure, balance)
        return phi, jnp.where(held[:, None], jnp.eye(count, dtype=slope.dtype), slope), jnp.max(jnp.abs(phi))

    def iterate(pressure):
        phi, rows, merit = complementarity(pressure)
        newton = jnp.maximum(pressure - jnp.linalg.solve(rows, phi), 0.0)
        better = complementarity(newton)[2] < merit  # False for NaN: the sweep
        return jnp.where(better, newton, sweep(pressure))

    def unsettled(carry):
        pressure, previous, iterations = carry
        change = jnp.max(jnp.abs(pressure - previous))
        return (change > tolerance * jnp.max(jnp.abs(pressure))) & (iterations < max_sweeps)

    def again(carry):
        pressure, _, iterations = carry
        return iterate(pressure), pressure, iterations + 1

    # previous = 0, the sweep's start: the loop runs as from inf, but an all-zero sweep (a fixed point) stops at once
    pressure, previous, _ = jax.lax.while_loop(unsettled, again, (first, jnp.zeros_like(first), 1))
    return pressure, relative_change(pressure, previous)


def relative_change(new, old):
    """``max |new - old| / max |new|`` (0 where nothing changed; NaN where either is NaN)."""
    change = jnp.max(jnp.abs(new - old))
    return jnp.where(change == 0, 0.0, change / jnp.maximum(jnp.max(jnp.abs(new)), jnp.finfo(new.dtype).tiny))


def bisect(function, low, high, iterations: int = BISECTIONS):
    """Root of an increasing scalar ``function`` in ``[low, high]`` (``function(low) <= 0 <= function(high)``)."""

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        negative = function(mid) <= 0.0
        return jnp.where(negative, mid, lo), jnp.where(negative, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (jnp.asarray(low), jnp.asarray(high)))
    return 0.5 * (lo + hi)


def implicit_deposit(li_volume, dt, area, overpotential, pressure_of, current_of, rate):
    """Li volume after a backward-Euler step of ``dV/dt = rate * area * i(eta, p(V))``.

    ``pressure_of(V)`` the Li pressure, ``current_of(eta, p)`` the plating current density, ``rate`` the volume per
    charge (um per s per A/m^2: ``1e6 Omega / F``), ``area`` the Li/electrolyte interface (um per unit thickness).
    ``i`` falls as ``V`` rises, so the residual is increasing and its root lies between ``V`` and the explicit
    update: bisection, which cannot overshoot the equilibrium ``p_max`` however stiff the Li. A root below 0 (the
    kinetics would strip more Li than there is) gives 0: the Li is depleted, the exact solution with ``V >= 0``.
    """
    explicit = li_volume + dt * rate * area * current_of(overpotential, pressure_of(li_volume))

    def residual(v):
        return v - li_volume - dt * rate * area * current_of(overpotential, pressure_of(v))

    return jnp.maximum(bisect(residual, jnp.minimum(li_volume, explicit), jnp.maximum(li_volume, explicit)), 0.0)


def implicit_deposits(li_volume, dt, area, overpotential, base_volume, compliance, pressure, bulk_modulus, current_of,
                      rate, tolerance: float = COUPLED_TOLERANCE, max_sweeps=COUPLED_SWEEPS):
    """Li volumes ``(N,)`` after a backward-Euler step of ``dV_j/dt = rate * area_j * i(eta, p_j(V))`` for ``N``
    filaments whose pressures couple through the crack compliance matrix (:func:`li_pressures` with ``base_volume``
    and ``compliance``). Jacobi sweeps: every filament's :func:`implicit_deposit` with the others' pressures held
    (``p_j(V_j) = li_pressure(V_j, B_j + sum_{k != j} C_jk p_k, C_jj, K)``), then the coupled pressures of the new
    volumes, until the held coupling changes by no more than ``tolerance`` times the largest volume (or
    ``max_sweeps``, also the cap of those pressures' sweeps). The first sweep holds ``pressure``, those ``B`` was
    linearised about (``B = V_c - C p``); its coupling ``C p - diag(C) p`` is 0 for one filament (to the round-off
    of a fused multiply-add where compiled), which is then :func:`implicit_deposit`. Returns the volumes and the
    residual: the larger of the last sweep's change of the coupling over the largest volume and the residual of
    its pressures' sweeps (0 for one filament, or that round-off: 1e-19 to 1e-17 in the scenario; above
    ``tolerance``: unconverged)."""
    diagonal = jnp.diagonal(compliance)
    scale = jnp.max(jnp.abs(li_volume))

    def deposit(coupling):
        pressure_of = lambda v: li_pressure(v, base_volume + coupling, diagonal, bulk_modulus)  # noqa: E731
        volume = implicit_deposit(li_volume, dt, area, overpotential, pressure_of, current_of, rate)
        pressure, residual = li_pressures(volume, base_volume, compliance, bulk_modulus, tolerance, max_sweeps)
        return volume, compliance @ pressure - diagonal * pressure, residual

    def unsettled(carry):
        _, coupling, previous, _, sweeps = carry
        return (jnp.max(jnp.abs(coupling - previous)) > tolerance * scale) & (sweeps < max_sweeps)

    def again(carry):
        _, coupling, _, _, sweeps = carry
        volume, following, residual = deposit(coupling)
        return volume, following, coupling, residual, sweeps + 1

    start = compliance @ pressure - diagonal * pressure
    volume, coupling, residual = deposit(start)
    volume, coupling, previous, residual, _ = jax.lax.while_loop(unsettled, again,
                                                                 (volume, coupling, start, residual, 1))
    change = jnp.max(jnp.abs(coupling - previous))
    return volume, jnp.maximum(jnp.where(change == 0, 0.0, change / jnp.maximum(scale, jnp.finfo(scale.dtype).tiny)),
                               residual)  # NaN stays NaN: unconverged


def onset_overpotential(young, poisson, toughness, depth, molar_volume, geometry: float = EDGE_FACTOR):
    """``|eta_c| = Omega_Li p_c / F`` (V), ``p_c = sqrt(E' G_c) / (geometry sqrt(pi a))``; ``young`` GPa,
    ``toughness`` GPa um (1e-3 per J/m^2), ``depth`` um; ``geometry`` 1.1215 for an edge flaw, 1 for a centre
    crack of half-length ``a`` (physics.md 5.5: LLZO 76 / 24 mV at 1 / 10 um)."""
    modulus = young / (1.0 - poisson**2)
    pressure = np.sqrt(modulus * toughness) / (geometry * np.sqrt(np.pi * depth))
    return float(mechanical_overpotential(pressure, molar_volume))
