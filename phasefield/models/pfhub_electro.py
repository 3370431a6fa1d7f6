"""PFHub benchmark 6 (revision 0, "hackathon"): Cahn-Hilliard coupled to Poisson electrostatics.

shared/pfhub.md section 4.1 (usnistgov/pfhub ``benchmarks/benchmark6-hackathon.ipynb``):

* ``F = int [kappa/2 |grad c|^2 + rho (c - c_a)^2 (c_b - c)^2 + k c Phi / 2] dV``;
* ``dc/dt = div(M grad mu)``, ``mu = 2 rho (c - c_a)(c_b - c)(c_a + c_b - 2c) - kappa lap c + k Phi``;
* ``lap Phi = -k c / eps``, solved at every step (and at every evaluation of ``mu``);
* ``c_a = 0.3, c_b = 0.7, kappa = 2, rho = 5, M = 5, k = 0.09, eps = 90``;
* ``c(x, y, 0) = 0.5 + 0.04 [cos(0.2x)cos(0.11y) + (cos(0.13x)cos(0.087y))^2 + cos(0.025x - 0.15y)cos(0.07x - 0.02y)]``;
* c: no flux everywhere; Phi: ``Phi = 0`` at ``x = 0``, ``dPhi/dn = 0`` on top and bottom, ``Phi = sin(y/7)``
  on the right boundary; PFHub runs to ``t = 400``.

Variants:

* ``a``: the square ``[0, 100]^2``. The cell-centred Poisson problem is solved directly in the cosine
  basis (:class:`SpectralBasis`: odd in x for the Dirichlet walls, even in y), the wall value
  ``sin(y/7)`` moved to the right-hand side through the ghost cell, so the semi-implicit schemes of
  :func:`cahn_hilliard` apply with ``f'(c) + k Phi(c)`` as the explicit part.
* ``b``: ``[0, 50] x [0, 100]`` joined to the half disc of radius 50 centred at ``(50, 50)``, the arc
  being the right boundary (area 8927.0). It is embedded in the ``[0, 100]^2`` grid as a staircase of
  whole cells (centre inside); faces between an inside and an outside cell carry no flux of ``c``
  (the staircase is ``c``'s boundary, up to ``h/2`` off the arc), while ``Phi = sin(y/7)`` is imposed
  on the arc itself by the symmetric cut-cell rule (:class:`MaskedPoisson`). Poisson is solved by
  conjugate gradients warm-started from the last step; ``c`` steps by forward Euler (its stable dt
  is the Cahn-Hilliard limit of the grid).

``/scalars/free_energy`` is PFHub's ``F`` with ``Phi`` solved for the current ``c`` (``F(0+)`` at
``t = 0``; codes that log before the first Poisson solve report only the chemical and gradient part).
The electrostatic term with inhomogeneous Dirichlet walls makes ``F`` not exactly a Lyapunov function
of these dynamics, so the run is not stopped where it rises. Nondimensional, as in the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, SolverConfig, option, scenario_parameters
from phasefield.decomposition import laid_out, slabs_for
from phasefield.grid import Boundary, Grid, Side
from phasefield.models.gradient_flow import cahn_hilliard, cahn_hilliard_stable_dt
from phasefield.operators import SpectralBasis, face_gradient
from phasefield.operators.stencils import neighbours
from phasefield.physics.electrodeposition import working_tolerance
from phasefield.physics.free_energy import (
    double_well,
    double_well_curvature_max,
    double_well_derivative,
    gradient_energy,
)
from phasefield.registry import register_scenario
from phasefield.schemes import Stepper
from phasefield.simulation import Quantity, Simulation

LENGTH = 100.0
CG_TOLERANCE = 1e-10  # 6b Poisson: relative residual of the CG solve ...
CG_EPSILONS = 10.0  # ... at least this many epsilons of the working precision (float32: 1.2e-6; it reaches 6e-7)
THETA_MIN = 0.05  # cut-cell distances below this fraction of h are clamped (conditioning)
VARIANTS = ("a", "b")


@scenario_parameters
@dataclass
class Config:
    """``scenario=pfhub_electro``: PFHub benchmark 6 (Cahn-Hilliard + electrostatics)."""

    name: str = option("pfhub_electro", help="scenario name")
    variant: str = option("a", choices=VARIANTS, help="a: square 100 x 100, b: rectangle + half disc")
    shape: list[int] = option(lambda: [100, 100], min=8, help="cells per axis on the 100 x 100 box (square cells)")
    c0: float = option(0.5, help="mean composition of the initial condition")
    epsilon: float = option(0.04, min=0.0, help="amplitude of the initial perturbation (PFHub c1)")
    rho: float = option(5.0, min=0.0, exclusive=True, help="double-well height")
    c_alpha: float = option(0.3, help="composition of the alpha well")
    c_beta: float = option(0.7, help="composition of the beta well")
    kappa: float = option(2.0, min=0.0, exclusive=True, help="gradient-energy coefficient")
    mobility: float = option(5.0, min=0.0, exclusive=True, help="Cahn-Hilliard mobility M")
    charge: float = option(0.09, help="k: charge per unit composition (couples c and Phi)")
    permittivity: float = option(90.0, min=0.0, exclusive=True, help="eps of lap Phi = -k c / eps")
    t_end: float = option(400.0, min=0.0, exclusive=True, help="simulated end time (PFHub: 400)")

    def check(self, prefix: str):
        if len(self.shape) != 2 or self.shape[0] != self.shape[1]:
            raise ConfigError(f"{prefix}.shape", self.shape, "[n, n]: square cells on the 100 x 100 box")
        if not self.c_alpha < self.c_beta:
            raise ConfigError(f"{prefix}.c_beta", self.c_beta, f"greater than c_alpha = {self.c_alpha}")


def initial_condition(x, y, params: Config):
    """PFHub 6's cosine perturbation (note 0.2x in the first term and amplitude 0.04)."""
    return params.c0 + params.epsilon * (
        np.cos(0.2 * x) * np.cos(0.11 * y)
        + (np.cos(0.13 * x) * np.cos(0.087 * y)) ** 2
        + np.cos(0.025 * x - 0.15 * y) * np.cos(0.07 * x - 0.02 * y)
    )


def right_potential(y):
    """The Dirichlet value on the right boundary, ``Phi = sin(y / 7)``."""
    return jnp.sin(y / 7.0)


def domain_mask(grid: Grid, variant: str) -> np.ndarray:
    """1 for cells whose centre lies in the domain, else 0 (all ones for ``a``)."""
    x, y = grid.coordinates()
    if variant == "a":
        return np.ones(grid.shape)
    inside = (x < 0.5 * LENGTH) | ((x - 0.5 * LENGTH) ** 2 + (y - 0.5 * LENGTH) ** 2 < (0.5 * LENGTH) ** 2)
    return inside.astype(float)


def square_potential(grid: Grid, params: Config, dtype=jnp.float64, slabs=None):
    """Direct solver of the 6a Poisson problem: ``c -> Phi`` (cell-centred, 5-point stencil).

    With ghost ``2 g - Phi`` at the right wall, ``lap_h Phi = lap_0 Phi + 2 g / h^2`` in the last
    column (``lap_0``: homogeneous Dirichlet in x, Neumann in y), so ``Phi = lap_0^-1 (-k c / eps - 2 g / h^2)``.
    ``dtype``: the working precision; ``slabs``: ``c`` and ``Phi`` split along x over the devices (the slab
    transforms of :class:`SpectralBasis`).
    """
    boundary = Boundary(((Side("dirichlet"), Side("dirichlet")), (Side("neumann"), Side("neumann"))))
    basis = SpectralBasis(grid, boundary, dtype, slabs)
    h = grid.spacing[0]
    wall = np.zeros(grid.shape)
    wall[-1, :] = 2.0 * np.sin(grid.axis_coordinates(1) / 7.0) / h**2
    wall = jnp.asarray(wall, dtype)

    def solve(params, c):
        rhs = -params.charge * c / params.permittivity - wall
        return basis.inverse(basis.forward(rhs) / basis.laplacian_symbol)

    return solve


class MaskedPoisson:
    """The 6b operators on the staircase domain: face masks, the Poisson operator and its solve.

    ``A Phi = sum_faces (Phi_j - Phi_i)/h^2`` over faces between inside cells, ``-Phi_i / (theta h^2)``
    on Dirichlet faces (the left wall, theta = 1/2, and faces to outside cells, theta h the distance to
    the arc; for cells with x > 50 the arc also lies past the box's top and bottom walls), nothing on the
    top and bottom walls of the rectangle (x < 50); the Dirichlet values ``g / (theta h^2)`` go to the
    right-hand side. ``-A`` is symmetric positive definite. ``c`` sees the staircase (no flux through
    inside-outside faces). The arrays are in ``dtype``, the working precision; the CG tolerance is raised to
    what it resolves (:func:`working_tolerance`).
    """

    def __init__(self, grid: Grid, mask: np.ndarray, dtype=jnp.float64):
        self.grid = grid
        h = grid.spacing[0]
        self.h = h
        self.tolerance = working_tolerance(CG_TOLERANCE, dtype, CG_EPSILONS)
        self.mask = jnp.asarray(mask, dtype)
        inside = mask > 0
        # interior faces (both cells inside), n + 1 per axis with the walls closed
        fx = np.zeros((grid.shape[0] + 1, grid.shape[1]))
        fx[1:-1] = inside[1:] & inside[:-1]
        fy = np.zeros((grid.shape[0], grid.shape[1] + 1))
        fy[:, 1:-1] = inside[:, 1:] & inside[:, :-1]
        self.faces = (jnp.asarray(fx, dtype), jnp.asarray(fy, dtype))
        # the same faces as each cell's (low, high) pair, in the cells' shape: one-row halos on slabs
        self.cell_faces = ((jnp.asarray(fx[:-1], dtype), jnp.asarray(fx[1:], dtype)),
                           (jnp.asarray(fy[:, :-1], dtype), jnp.asarray(fy[:, 1:], dtype)))
        # Dirichlet faces of each inside cell, symmetric cut-cell form (Gibou et al., JCP 176, 205 (2002)):
        # a face whose neighbour is outside contributes (g - Phi_i) / (theta h^2), theta h the distance from
        # the centre to the arc along the axis and g = sin(y/7) at the crossing; the left wall (Phi = 0) is
        # at theta = 1/2 (the ghost-cell rule of the walls)
        x, y = grid.axis_coordinates(0), grid.axis_coordinates(1)
        X, Y = np.meshgrid(x, y, indexing="ij")
        half, radius = 0.5 * LENGTH, 0.5 * LENGTH
        count = np.zeros(grid.shape)
        value = np.zeros(grid.shape)
        count[0, :] += 2.0 * inside[0, :]
        beyond = np.concatenate([inside[1:], np.zeros((1, grid.shape[1]), bool)])  # past the right wall: outside
        right_out = inside & ~beyond
        reach = np.sqrt(np.maximum(radius**2 - (Y - half) ** 2, 0.0))
        theta = np.clip((half + reach - X) / h, THETA_MIN, 1.0)
        count += right_out / theta
        value += right_out * np.sin(Y / 7.0) / theta
        span = np.sqrt(np.maximum(radius**2 - (X - half) ** 2, 0.0))
        # past the top and bottom walls: outside where x > 50 (there the arc, not the wall, bounds the domain)
        disc_part = X > half
        up_out = inside & ~np.concatenate([inside[:, 1:], ~disc_part[:, -1:]], axis=1)
        theta = np.clip((half + span - Y) / h, THETA_MIN, 1.0)
        count += up_out / theta
        value += up_out * np.sin((half + span) / 7.0) / theta
        down_out = inside & ~np.concatenate([~disc_part[:, :1], inside[:, :-1]], axis=1)
        theta = np.clip((Y - half + span) / h, THETA_MIN, 1.0)
        count += down_out / theta
        value += down_out * np.sin((half - span) / 7.0) / theta
        self.dirichlet_weight = jnp.asarray(count * inside, dtype)
        self.dirichlet_rhs = jnp.asarray(value * inside / h**2, dtype)

    def masked_laplacian(self, u):
        """``div grad u`` with no flux through the domain boundary (zero outside): per axis
        ``(f_+ (u_+ - u) / h - f_- (u - u_-) / h) / h``, ``f_-+`` the cell's open low and high faces."""
        neumann = Boundary.uniform(2, "neumann")
        total = 0
        for axis, (low, high) in enumerate(self.cell_faces):
            below, above = neighbours(u, neumann, axis)
            h = self.grid.spacing[axis]
            total = total + (high * ((above - u) / h) - low * ((u - below) / h)) / h
        return total * self.mask

    def operator(self, phi):
        """``lap_h Phi`` with homogeneous Dirichlet faces; identity-like (``-phi``) outside, to keep it definite."""
        inside = self.masked_laplacian(phi) - self.dirichlet_weight * phi / self.h**2
        return inside - (1.0 - self.mask) * phi

    def solve(self, params, c, guess, max_iterations=4000):
        """``Phi`` on the inside cells (0 outside) from ``lap Phi = -k c / eps`` and the wall values."""
        rhs = (-params.charge * c / params.permittivity - self.dirichlet_rhs) * self.mask
        phi, _ = jax.scipy.sparse.linalg.cg(lambda p: -self.operator(p), -rhs, x0=guess * self.mask,
                                            tol=self.tolerance, maxiter=max_iterations)
        return phi * self.mask


def masked_gradient_energy(c, grid: Grid, faces, kappa):
    """``kappa/2 sum_faces (dc/dn)^2 dV`` over the interior faces (no-flux walls add nothing)."""
    neumann = Boundary.uniform(2, "neumann")
    total = sum(jnp.sum(faces[a] * face_gradient(c, grid, neumann, a) ** 2) for a in range(2))
    return 0.5 * kappa * total * grid.cell_volume


def free_energy_parts(c, phi, mask, grid: Grid, params: Config, faces=None):
    """``(chemical + gradient, electrostatic)`` parts of PFHub's F over the inside cells."""
    bulk = jnp.sum(mask * double_well(c, params.rho, params.c_alpha, params.c_beta)) * grid.cell_volume
    if faces is None:
        grad = gradient_energy(c, grid, Boundary.uniform(2, "neumann"), params.kappa)
    else:
        grad = masked_gradient_energy(c, grid, faces, params.kappa)
    electric = 0.5 * params.charge * jnp.sum(mask * c * phi) * grid.cell_volume
    return bulk + grad, electric


def f_prime(params: Config, c):
    return double_well_derivative(c, params.rho, params.c_alpha, params.c_beta)


def coefficients(params: Config):
    return params.mobility, params.kappa, double_well_curvature_max(params.rho, params.c_alpha, params.c_beta)


def make_grid(config: Config) -> Grid:
    return Grid(tuple(config.shape), LENGTH / config.shape[0])


def square_stepper(grid: Grid, config: Config, solver, slabs=None) -> Stepper:
    """6a: :func:`cahn_hilliard` with the explicit part ``f'(c) + k Phi(c)``; the potential a stored field.
    ``solver.precision``: the working precision; ``slabs``: the grid split along x over the devices."""
    dtype = jnp.dtype(solver.precision)
    potential = square_potential(grid, config, dtype, slabs)
    inner = cahn_hilliard(grid, Boundary.uniform(2, "neumann"),
                          lambda params, c: f_prime(params, c) + params.charge * potential(params, c),
                          coefficients, solver.scheme, dtype, stabilization=solver.stabilization, slabs=slabs)

    def fields(params, carry):
        c = carry["state"]["c"]
        return {"c": c, "potential": potential(params, c)}

    return Stepper(inner.init, inner.step, fields, inner.stable_dt, inner.order)


def staircase_stepper(grid: Grid, poisson: MaskedPoisson, slabs=None) -> Stepper:
    """6b: forward Euler on the masked stencils, Poisson by CG warm-started from the last potential; ``slabs``:
    ``c`` and ``Phi`` split along x over the devices (halo exchanges, the CG's dot products all-reduces)."""

    @jax.jit
    def initial_potential(params, c):  # one compiled solve (run eagerly, CG's loop is traced op by op)
        return poisson.solve(params, c, jnp.zeros_like(c))

    def init(params, fields):
        c = jnp.asarray(fields["c"], poisson.mask.dtype)
        carry = {"state": {"c": c, "potential": initial_potential(params, c)}, "history": {}, "cache": {}}
        return laid_out(slabs, carry, grid.shape)

    def step(params, carry, dt):
        c, phi = carry["state"]["c"], carry["state"]["potential"]
        dt = jnp.asarray(dt, c.dtype)
        mu = f_prime(params, c) - params.kappa * poisson.masked_laplacian(c) + params.charge * phi
        c = c + dt * params.mobility * poisson.masked_laplacian(mu)
        return laid_out(slabs, {**carry, "state": {"c": c, "potential": poisson.solve(params, c, phi)}}, grid.shape)

    def stable_dt(params):
        return cahn_hilliard_stable_dt(grid, *coefficients(params))

    return Stepper(init, step, lambda params, carry: dict(carry["state"]), stable_dt, 1)


@register_scenario("pfhub_electro", Config, SolverConfig)
def build(config: Config, solver) -> Simulation:
    grid = make_grid(config)
    slabs = slabs_for(solver.decomposition, grid.shape)
    dtype = jnp.dtype(solver.precision)
    mask_host = domain_mask(grid, config.variant)
    mask = jnp.asarray(mask_host)
    if config.variant == "a":
        stepper = square_stepper(grid, config, solver, slabs)
        faces = None
    else:
        if solver.scheme != "explicit":
            raise ConfigError("solver.scheme", solver.scheme, "'explicit' for variant b (staircase domain)")
        poisson = MaskedPoisson(grid, mask_host, dtype)
        stepper = staircase_stepper(grid, poisson, slabs)
        faces = poisson.faces
    x, y = grid.coordinates()
    c_init = np.broadcast_to(initial_condition(x, y, config), grid.shape) * mask_host + config.c0 * (1 - mask_host)

    def diagnostics(params, carry):
        fields = stepper.fields(params, carry)
        c, phi = fields["c"].astype(jnp.float64), fields["potential"].astype(jnp.float64)
        chemical, electric = free_energy_parts(c, phi, mask, grid, params, faces)
        return {
            "free_energy": chemical + electric,
            "chemical_gradient_energy": chemical,
            "electrostatic_energy": electric,
            "total_mass": jnp.sum(mask * c) * grid.cell_volume,
            "c_min": jnp.min(jnp.where(mask > 0, c, jnp.inf)),
            "c_max": jnp.max(jnp.where(mask > 0, c, -jnp.inf)),
        }

    return Simulation(
        name=config.name,
        grid=grid,
        parameters=config,
        stepper=stepper,
        initial_fields=lambda: {"c": c_init.copy()},
        field_info={"c": Quantity("1", "composition (outside the 6b domain: c0, inert)"),
                    "potential": Quantity("1", "electrostatic potential Phi (0 outside the 6b domain)")},
        diagnostics=diagnostics,
        scalar_info={
            "free_energy": Quantity("1", "PFHub F = int kappa/2 |grad c|^2 + f_chem(c) + k c Phi / 2"),
            "chemical_gradient_energy": Quantity("1", "int kappa/2 |grad c|^2 + f_chem(c)"),
            "electrostatic_energy": Quantity("1", "int k c Phi / 2"),
            "total_mass": Quantity("1", "int c dV over the domain (conserved)"),
            "c_min": Quantity("1", "minimum composition in the domain"),
            "c_max": Quantity("1", "maximum composition in the domain"),
        },
        scales={"length": (1.0, "1"), "time": (1.0, "1"), "energy_density": (1.0, "1")},
    )
