"""Finite- and small-strain references for swelling cylinders (plane strain): one bonded in an infinite
matrix and a free core-shell one (docs/finite_strain.md).

A circular particle of reference radius ``A`` grows isotropically, ``F = F_e F_g`` with
``F_g = J_g^(1/3) I`` (``J_g = V / V_0``: the volume ratio of free swelling), inside an unbounded matrix
that does not swell; the axial stretch is held, ``F_zz = 1`` (plane strain, as the model's 2D
``out_of_plane: plane_strain``). Both phases are compressible neo-Hookean (Lame ``lam``, ``mu``)::

    W = mu / 2 (I_1 - 3 - 2 ln J) + lam / 2 (ln J)^2,    sigma_i = [mu (l_i^2 - 1) + lam ln J] / J

(principal Cauchy stresses, ``l_i`` the principal elastic stretches, ``J = l_1 l_2 l_3``), which is linear
elasticity with the same ``lam``, ``mu`` for small strains. The particle deforms uniformly,
``r = l A`` (uniform in-plane stress ``sigma_r = sigma_theta``); the matrix ``r(R)`` solves the radial
equilibrium of nominal stresses ``dP_r/dR + (P_r - P_theta) / R = 0``, ``P_i = dW/dl_i``, with
``r(A) = l A`` and ``u -> 0`` far away (:func:`matrix_response`, scipy ``solve_bvp``); the interface
traction balance fixes ``l`` (:func:`bonded_cylinder`). For an incompressible neo-Hookean matrix the
cavity-expansion pressure is closed form, ``p = mu [ln l + (1 - l^-2) / 2]``
(:func:`incompressible_cavity_pressure`).

The small-strain counterpart (:func:`bonded_cylinder_small_strain`, Lame): the particle strains
uniformly in plane by ``eps``, the matrix by ``u = eps A^2 / r`` (trace-free, so its ``lam`` does
not enter), ``eps = 3 K_p e* / (2 (lam_p + mu_p + mu_m))``, ``p = 2 mu_m eps``, matrix hoop stress at the
interface ``+p``, particle stress ``-p`` in plane. Stresses in the unit of the moduli; the radius change is
``a / A - 1`` (finite) or ``u(A) / A`` (small strain).

The free core-shell cylinder (:func:`core_shell_cylinder`, :func:`core_shell_small_strain`): a shell grown
by ``J_g`` on a pristine core, the same radial equilibrium in the shell with the growth ``g = J_g^(1/3)``
(elastic stretches ``r'/g, r/(g R), 1/g``), a uniform core and a free outer surface.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.integrate import solve_bvp
from scipy.optimize import brentq

FAR_FIELD = 200.0  # outer radius of the matrix BVP over A: the far-field condition is applied there


class Cylinder(NamedTuple):
    """Interface state of a bonded swelling cylinder (stress unit of the moduli; tension > 0).

    pressure: interface pressure ``-sigma_r(A)``; particle_hoop: hoop stress of the particle at its surface
    (``= -pressure``: uniform in-plane stress); radius_change: ``a / A - 1``; matrix_hoop: hoop stress of the
    matrix at the interface; particle_axial: ``sigma_zz`` in the particle.
    """

    pressure: float
    particle_hoop: float
    radius_change: float
    matrix_hoop: float
    particle_axial: float


def neo_hookean_stress(stretches, lam, mu):
    """Principal Cauchy stresses ``[mu (l_i^2 - 1) + lam ln J] / J`` of the compressible neo-Hookean solid."""
    stretches = np.asarray(stretches, dtype=float)
    volume = np.prod(stretches, axis=0)
    return (mu * (stretches**2 - 1.0) + lam * np.log(volume)) / volume


def incompressible_cavity_pressure(stretch, mu):
    """Pressure that expands a cylindrical cavity in an infinite incompressible neo-Hookean solid (plane
    strain) by the hoop stretch ``l = a / A``: ``p = mu [ln l + (1 - l^-2) / 2]``, from
    ``r^2 = R^2 + a^2 - A^2`` and ``p = int_a^inf mu (l^2 - l^-2) dr / r``. Small ``l - 1``: ``2 mu (l - 1)``."""
    stretch = np.asarray(stretch, dtype=float)
    return mu * (np.log(stretch) + 0.5 * (1.0 - stretch**-2))


def _nominal(radial, hoop, lam, mu, axial=1.0):
    """``P_r, P_theta`` (``dW/dl`` of the elastic stretches ``radial``, ``hoop``, ``axial``) and
    ``dP_r/dl_r``, ``dP_r/dl_theta``."""
    log_volume = np.log(radial * hoop * axial)
    p_r = mu * (radial - 1.0 / radial) + lam * log_volume / radial
    p_t = mu * (hoop - 1.0 / hoop) + lam * log_volume / hoop
    dr = mu * (1.0 + radial**-2) + lam * (1.0 - log_volume) / radial**2
    dt = lam / (radial * hoop)
    return p_r, p_t, dr, dt


def _radial_curvature(radius, r, slope, growth, lam, mu):
    """``r''`` from the radial equilibrium ``dP_r/dR + (P_r - P_theta) / R = 0`` of a layer grown by
    ``growth`` (``g``; elastic stretches ``r'/g, r/(g R), 1/g``; ``P = g^2 dW_e/dl_e``, ``g`` uniform)."""
    radial, hoop = slope / growth, r / (growth * radius)
    p_r, p_t, dr, dt = _nominal(radial, hoop, lam, mu, 1.0 / growth)
    return -growth * ((p_r - p_t) / radius + dt * (slope - r / radius) / (growth * radius)) / dr


def matrix_response(stretch, lam, mu, nodes: int = 400, tolerance: float = 1e-9):
    """Matrix Cauchy stresses ``(sigma_r, sigma_theta)`` at the interface when it is moved to ``a = l A``.

    Radial equilibrium of the compressible neo-Hookean matrix (module notes) for ``r(R)``, ``A = 1``, on
    ``1 <= R <= FAR_FIELD`` with ``r(1) = l`` and, at ``FAR_FIELD``, the small-strain far field
    ``u ~ 1/R`` (``l_r - 1 = -(l_theta - 1)``).
    """
    def rhs(radius, y):
        return np.vstack([y[1], _radial_curvature(radius, y[0], y[1], 1.0, lam, mu)])

    def boundary(inner, outer):
        return np.array([inner[0] - stretch, (outer[1] - 1.0) + (outer[0] / FAR_FIELD - 1.0)])

    radius = np.geomspace(1.0, FAR_FIELD, nodes)
    current = np.sqrt(radius**2 + stretch**2 - 1.0)  # the incompressible solution: a guess with l_r > 0
    guess = np.vstack([current, radius / current])
    solution = solve_bvp(rhs, boundary, radius, guess, tol=tolerance, max_nodes=100000)
    if not solution.success:
        raise RuntimeError(f"matrix BVP at stretch {stretch}: {solution.message}")
    slope = solution.y[1, 0]
    p_r, p_t, _, _ = _nominal(slope, stretch, lam, mu)
    return p_r / stretch, p_t / slope  # Cauchy: sigma_r = P_r l_r / J = P_r / l_theta, sigma_theta = P_theta / l_r


def particle_stress(stretch, growth, lam, mu):
    """``(sigma_r = sigma_theta, sigma_zz)`` of the uniform particle at hoop stretch ``l`` (plane strain),
    elastic stretches ``(l / g, l / g, 1 / g)``, ``g = J_g^(1/3)``."""
    in_plane, axial = neo_hookean_stress([stretch / growth, stretch / growth, 1.0 / growth], lam, mu)[[0, 2]]
    return float(in_plane), float(axial)


def bonded_cylinder(volume_ratio, particle, matrix, incompressible_matrix: bool = False) -> Cylinder:
    """Finite-strain interface state of the cylinder that grows by ``volume_ratio`` (``J_g``) in the matrix.

    ``particle``, ``matrix``: Lame pairs ``(lam, mu)``; ``incompressible_matrix``: the matrix is the
    incompressible neo-Hookean solid of shear modulus ``matrix[1]`` (closed-form cavity pressure, hoop stress
    ``sigma_r + mu (l^2 - l^-2)``) instead of the compressible one (the radial BVP).
    """
    growth = volume_ratio ** (1.0 / 3.0)
    lam_m, mu_m = matrix

    def matrix_stress(stretch):
        if incompressible_matrix:
            radial = -incompressible_cavity_pressure(stretch, mu_m)
            return radial, radial + mu_m * (stretch**2 - stretch**-2)
        return matrix_response(stretch, lam_m, mu_m)

    def imbalance(stretch):
        return particle_stress(stretch, growth, *particle)[0] - matrix_stress(stretch)[0]

    # l = 1: the particle is compressed, the matrix unloaded; at the particle's free in-plane stretch (held
    # along z it exceeds g, as the small-strain 3 K e* / (2 (lam + mu)) > e*) the matrix pushes it back
    free = brentq(lambda stretch: particle_stress(stretch, growth, *particle)[0], 0.5 * growth, 2.0 * growth)
    low, high = (1.0, free) if volume_ratio >= 1 else (free, 1.0)
    stretch = brentq(imbalance, low, high, xtol=1e-13, rtol=1e-12)
    radial, hoop = matrix_stress(stretch)
    in_plane, axial = particle_stress(stretch, growth, *particle)
    return Cylinder(pressure=-radial, particle_hoop=in_plane, radius_change=stretch - 1.0,
                    matrix_hoop=hoop, particle_axial=axial)


def bonded_cylinder_small_strain(eigenstrain, particle, matrix) -> Cylinder:
    """Small-strain (Lame) state of the cylinder with the dilatational eigenstrain ``e*`` (plane strain)."""
    lam_p, mu_p = particle
    mu_m = matrix[1]
    bulk = lam_p + 2.0 * mu_p / 3.0
    strain = 3.0 * bulk * eigenstrain / (2.0 * (lam_p + mu_p + mu_m))
    pressure = 2.0 * mu_m * strain
    return Cylinder(pressure=pressure, particle_hoop=-pressure, radius_change=strain, matrix_hoop=pressure,
                    particle_axial=2.0 * lam_p * strain - 3.0 * bulk * eigenstrain)


class CoreShell(NamedTuple):
    """State of a free two-phase cylinder (stress unit of the moduli; tension > 0).

    core_stress: in-plane stress ``sigma_r = sigma_theta`` of the uniform core (the shell pulls it: > 0);
    surface_hoop: hoop stress of the shell at its free surface; front_hoop: hoop stress of the shell at the front (its inner radius); radius_change: ``a / A - 1``;
    core_stretch_change: ``l_c - 1`` (in-plane strain of the core; small strain: ``u / r`` there).
    """

    core_stress: float
    surface_hoop: float
    front_hoop: float
    radius_change: float
    core_stretch_change: float


def core_shell_cylinder(volume_ratio, front, core, shell, nodes: int = 200, tolerance: float = 1e-10) -> CoreShell:
    """Finite-strain state of a free cylinder (radius ``A = 1``, plane strain ``F_zz = 1``) whose shell
    ``front < R < 1`` has grown by ``volume_ratio`` on a pristine core ``R < front``.

    Core: uniform ``r = l_c R`` (neo-Hookean, ``core`` Lame pair). Shell: ``F = F_e g I``, ``g = J_g^(1/3)``,
    ``r(R)`` from the radial equilibrium (``shell`` Lame pair); ``r(front) = l_c front``, the radial
    Cauchy stresses continuous at the front and ``sigma_r = 0`` at ``R = 1``; ``l_c`` is the BVP's unknown
    parameter (scipy ``solve_bvp``).
    """
    growth = volume_ratio ** (1.0 / 3.0)
    lam_s, mu_s = shell

    def shell_stress(radius, r, slope):
        axial = np.full_like(np.asarray(r, dtype=float), 1.0 / growth)
        stretches = np.array([slope / growth, r / (growth * radius), axial])
        return neo_hookean_stress(stretches, lam_s, mu_s)

    def rhs(radius, y, p):
        return np.vstack([y[1], _radial_curvature(radius, y[0], y[1], growth, lam_s, mu_s)])

    def boundary(inner, outer, p):
        core_radial = neo_hookean_stress([p[0], p[0], 1.0], *core)[0]
        return np.array([inner[0] - p[0] * front,
                         shell_stress(front, inner[0], inner[1])[0] - core_radial,
                         shell_stress(1.0, outer[0], outer[1])[0]])

    small = core_shell_small_strain(np.log(volume_ratio) / 3.0, front, core, shell)
    radius = np.linspace(front, 1.0, nodes)
    core_change = small.core_stretch_change
    # the small-strain shell u = a r + b / r through the small-strain core and surface displacements
    b = (core_change - small.radius_change) * front**2 / (1.0 - front**2)
    a = small.radius_change - b
    guess = np.vstack([radius * (1.0 + a) + b / radius, 1.0 + a - b / radius**2])
    solution = solve_bvp(rhs, boundary, radius, guess, p=[1.0 + core_change], tol=tolerance, max_nodes=100000)
    if not solution.success:
        raise RuntimeError(f"core-shell BVP at J = {volume_ratio}: {solution.message}")
    stretch = solution.p[0]
    inner, outer = solution.y[:, 0], solution.y[:, -1]
    return CoreShell(core_stress=float(neo_hookean_stress([stretch, stretch, 1.0], *core)[0]),
                     surface_hoop=float(shell_stress(1.0, outer[0], outer[1])[1]),
                     front_hoop=float(shell_stress(front, inner[0], inner[1])[1]),
                     radius_change=float(outer[0] - 1.0), core_stretch_change=float(stretch - 1.0))


def core_shell_small_strain(eigenstrain, front, core, shell) -> CoreShell:
    """Small-strain (Lame) state of the free core-shell cylinder with the dilatational eigenstrain ``e*`` in
    the shell (plane strain ``eps_zz = 0``): ``u = C_1 r`` in the core, ``u = C_2 r + C_3 / r`` in the shell,
    ``u`` and ``sigma_r`` continuous at the front, ``sigma_r(1) = 0``."""
    lam_c, mu_c = core
    lam_s, mu_s = shell
    eigenstress = (3.0 * lam_s + 2.0 * mu_s) * eigenstrain  # 3 K_s e*
    # unknowns (C_1, C_2, C_3); shell sigma_r = 2 (lam + mu) C_2 - 2 mu C_3 / r^2 - 3 K e*
    system = np.array([[front, -front, -1.0 / front],
                       [2.0 * (lam_c + mu_c), -2.0 * (lam_s + mu_s), 2.0 * mu_s / front**2],
                       [0.0, 2.0 * (lam_s + mu_s), -2.0 * mu_s]])
    c1, c2, c3 = np.linalg.solve(system, [0.0, -eigenstress, eigenstress])

    def hoop(r):
        return 2.0 * (lam_s + mu_s) * c2 + 2.0 * mu_s * c3 / r**2 - eigenstress

    return CoreShell(core_stress=2.0 * (lam_c + mu_c) * c1, surface_hoop=hoop(1.0), front_hoop=hoop(front),
                     radius_change=c2 + c3, core_stretch_change=c1)
