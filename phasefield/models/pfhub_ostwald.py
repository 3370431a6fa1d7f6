"""PFHub benchmark 2 (revision 1): Ostwald ripening, Cahn-Hilliard coupled to four Allen-Cahn fields.

shared/pfhub.md section 2.1 (the 2016 draft of ``benchmarks/benchmark2.ipynb`` with its erratum
``c_b = 0.7`` fixed, the initial condition of the reference implementations):

* ``F = int [f_chem + kappa_c/2 |grad c|^2 + sum_i kappa_eta/2 |grad eta_i|^2] dV``, ``p = 4`` fields;
* ``f_chem = f_a(c) (1 - h) + f_b(c) h + w g``, ``f_a = rho^2 (c - c_a)^2``, ``f_b = rho^2 (c_b - c)^2``,
  ``h = sum_i eta_i^3 (6 eta_i^2 - 15 eta_i + 10)``,
  ``g = sum_i eta_i^2 (1 - eta_i)^2 + alpha sum_i sum_{j != i} eta_i^2 eta_j^2`` (each pair counted twice);
* ``dc/dt = div(M grad(df/dc - kappa_c lap c))``, ``deta_i/dt = -L (df/deta_i - kappa_eta lap eta_i)``;
* ``c_a = 0.3, c_b = 0.7, rho^2 = 2, w = 1, alpha = 5, kappa_c = kappa_eta = 3, M = 5, L = 5``;
* ``c = 0.5 + 0.05 [cos(0.105x)cos(0.11y) + (cos(0.13x)cos(0.087y))^2 + cos(0.025x - 0.15y)cos(0.07x - 0.02y)]``,
  ``eta_i = 0.1 {cos(0.01 i x - 4) cos((0.007 + 0.01 i) y) + cos((0.11 + 0.01 i) x) cos((0.11 + 0.01 i) y)
  + 1.5 [cos((0.046 + 0.001 i) x + (0.0405 + 0.001 i) y) cos((0.031 + 0.001 i) x - (0.004 + 0.001 i) y)]^2}^2``.

Variants (the BM1 domains): ``a``: periodic ``[0, 200]^2`` (the initial condition is not periodic:
the grid sees a jump at the box edges, section 0.4), ``b``: no-flux ``[0, 200]^2``. PFHub's 2c
(T-shape) and 2d (sphere) are not implemented.

Schemes: ``imex1``/``sbdf2`` (:func:`semi_implicit_fields`: the gradient terms implicit in the
cosine/Fourier basis, ``df/dc`` and ``df/deta`` explicit, with ``A_c c`` and ``A_eta eta_i`` moved to the
implicit side: :class:`SolverConfig`) or ``explicit`` (forward Euler on the stencils). The initial
transient is fast (F drops from 9024 to about 4200 by t = 0.1): use an adaptive dt.
Fields ``c`` and ``eta1`` .. ``eta4``. Nondimensional, as in the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, SolverConfig as GradientFlowSolverConfig, option, scenario_parameters
from phasefield.decomposition import laid_out, slabs_for
from phasefield.grid import Boundary, Grid
from phasefield.models.gradient_flow import _order
from phasefield.operators import SpectralBasis, laplacian
from phasefield.physics.free_energy import gradient_energy
from phasefield.registry import register_scenario
from phasefield.schemes import Stepper, semi_implicit_fields
from phasefield.simulation import Quantity, Simulation

VARIANTS = ("a", "b")
ORDER_PARAMETERS = ("eta1", "eta2", "eta3", "eta4")
FIELDS = ("c",) + ORDER_PARAMETERS


@scenario_parameters
@dataclass
class Config:
    """``scenario=pfhub_ostwald``: PFHub benchmark 2 (Ostwald ripening)."""

    name: str = option("pfhub_ostwald", help="scenario name")
    variant: str = option("a", choices=VARIANTS, help="a: periodic square, b: no-flux square")
    shape: list[int] = option(lambda: [200, 200], min=4, help="cells per axis")
    spacing: float = option(1.0, min=1e-3, max=1e3, static=True, help="cell size (PFHub: a 200 x 200 domain)")
    c0: float = option(0.5, help="mean composition of the initial condition")
    epsilon_c: float = option(0.05, min=0.0, help="amplitude of the composition perturbation")
    epsilon_eta: float = option(0.1, min=0.0, help="amplitude of the order-parameter perturbation")
    psi: float = option(1.5, help="weight of the third order-parameter term")
    rho_squared: float = option(2.0, min=0.0, exclusive=True, help="rho^2 of the parabolic free energies")
    c_alpha: float = option(0.3, help="composition of the matrix (alpha)")
    c_beta: float = option(0.7, help="composition of the precipitates (beta)")
    barrier: float = option(1.0, min=0.0, help="w, height of the order-parameter barrier")
    alpha: float = option(5.0, min=0.0, help="alpha, cross term between order parameters")
    kappa_c: float = option(3.0, min=0.0, exclusive=True, help="gradient coefficient of c")
    kappa_eta: float = option(3.0, min=0.0, exclusive=True, help="gradient coefficient of the order parameters")
    mobility: float = option(5.0, min=0.0, exclusive=True, help="Cahn-Hilliard mobility M")
    relaxation: float = option(5.0, min=0.0, exclusive=True, help="Allen-Cahn mobility L")
    t_end: float = option(1000.0, min=0.0, exclusive=True, help="simulated end time (PFHub: to equilibrium)")

    def check(self, prefix: str):
        if len(self.shape) != 2:
            raise ConfigError(f"{prefix}.shape", self.shape, "a list of 2 cell counts")
        if not self.c_alpha < self.c_beta:
            raise ConfigError(f"{prefix}.c_beta", self.c_beta, f"greater than c_alpha = {self.c_alpha}")


@dataclass
class SolverConfig(GradientFlowSolverConfig):
    """``solver`` of PFHub 2: the gradient-flow solver with one stabilisation constant for ``c`` and one for the
    four order parameters (defaults: ``configs/solver/pfhub_ostwald.yaml``'s).

    Linearised about a grain (``eta_i = 1``), a field's SBDF2 step is stable at every dt when ``A > 3/4 f''``
    (the roots of ``xi^2 + 2 r xi - r``, ``r = (f'' - A) / (A + kappa k^2)``, lie in the unit disc for
    ``r < 1/3``). ``f_chem`` is quadratic in ``c`` with ``d2f/dc2 = 2 rho^2 = 4``: ``A = 4`` leaves nothing of
    ``c`` on the explicit side. An absent order parameter next to a grain has ``d2f/deta2 = 2 w + 4 w alpha = 22``:
    ``A = 20`` (``r = 0.1``); with ``A = 2`` the step is unstable beyond ``dt = 0.0138``.
    ``order_parameter_stabilization`` is 20 under every solver preset; outside ``solver=pfhub_ostwald`` set it
    with ``+solver.order_parameter_stabilization=...``.
    """

    stabilization: float = option(4.0, min=0.0, help="stabilisation constant A of c (2 rho^2: c's linear part "
                                                     "all implicit)")
    order_parameter_stabilization: float = option(20.0, min=0.0, help="stabilisation constant A of the order "
                                                                      "parameters eta_i (> 3/4 of 2 w + 4 w alpha)")


def initial_condition(x, y, params: Config) -> dict:
    """PFHub 2's cosine fields at the points ``x, y`` (absolute coordinates)."""
    c = params.c0 + params.epsilon_c * (
        np.cos(0.105 * x) * np.cos(0.11 * y)
        + (np.cos(0.13 * x) * np.cos(0.087 * y)) ** 2
        + np.cos(0.025 * x - 0.15 * y) * np.cos(0.07 * x - 0.02 * y)
    )
    fields = {"c": c}
    for i, name in enumerate(ORDER_PARAMETERS, start=1):
        third = (np.cos((0.046 + 0.001 * i) * x + (0.0405 + 0.001 * i) * y)
                 * np.cos((0.031 + 0.001 * i) * x - (0.004 + 0.001 * i) * y)) ** 2
        fields[name] = params.epsilon_eta * (
            np.cos(0.01 * i * x - 4.0) * np.cos((0.007 + 0.01 * i) * y)
            + np.cos((0.11 + 0.01 * i) * x) * np.cos((0.11 + 0.01 * i) * y)
            + params.psi * third
        ) ** 2
    return fields


def interpolation(eta):
    """``h(eta) = eta^3 (6 eta^2 - 15 eta + 10)``."""
    return eta**3 * (6.0 * eta**2 - 15.0 * eta + 10.0)


def interpolation_slope(eta):
    """``h'(eta) = 30 eta^2 (1 - eta)^2``."""
    return 30.0 * eta**2 * (1.0 - eta) ** 2


def chemical_energy_density(c, etas, params: Config):
    """``f_chem(c, eta_1..eta_p)`` (PFHub 2)."""
    f_alpha = params.rho_squared * (c - params.c_alpha) ** 2
    f_beta = params.rho_squared * (params.c_beta - c) ** 2
    h = sum(interpolation(e) for e in etas)
    squares = [e**2 for e in etas]
    total_squares = sum(squares)
    wells = sum(s * (1.0 - e) ** 2 for s, e in zip(squares, etas))
    cross = sum(s * (total_squares - s) for s in squares)  # sum_i sum_{j != i} eta_i^2 eta_j^2
    return f_alpha * (1.0 - h) + f_beta * h + params.barrier * (wells + params.alpha * cross)


def chemical_derivatives(c, etas, params: Config):
    """``(df/dc, [df/deta_i])``."""
    h = sum(interpolation(e) for e in etas)
    d_c = 2.0 * params.rho_squared * ((c - params.c_alpha) * (1.0 - h) - (params.c_beta - c) * h)
    jump = params.rho_squared * ((params.c_beta - c) ** 2 - (c - params.c_alpha) ** 2)  # f_b - f_a
    total_squares = sum(e**2 for e in etas)
    d_etas = [jump * interpolation_slope(e) + params.barrier * (
        2.0 * e * (1.0 - e) * (1.0 - 2.0 * e) + 4.0 * params.alpha * e * (total_squares - e**2)) for e in etas]
    return d_c, d_etas


def free_energy(state: dict, grid: Grid, boundary: Boundary, params: Config):
    """``F = sum_cells f_chem dV + gradient energies`` (the discrete energy of the stencil Laplacian)."""
    etas = [state[n] for n in ORDER_PARAMETERS]
    bulk = jnp.sum(chemical_energy_density(state["c"], etas, params)) * grid.cell_volume
    grad = gradient_energy(state["c"], grid, boundary, params.kappa_c)
    grad = grad + sum(gradient_energy(e, grid, boundary, params.kappa_eta) for e in etas)
    return bulk + grad


def explicit_limit(grid: Grid, params: Config):
    """Forward-Euler dt: the Cahn-Hilliard limit with ``max d2f/dc2 = 2 rho^2`` and the Allen-Cahn limit
    with a bound 12 w (1 + alpha) of ``d2f/deta2`` near [0, 1] plus the ``h''`` term."""
    lam = sum(4.0 / h**2 for h in grid.spacing)
    ch = 2.0 / (params.mobility * lam * (params.kappa_c * lam + 2.0 * params.rho_squared))
    jump = params.rho_squared * (params.c_beta - params.c_alpha) ** 2
    curvature = 12.0 * params.barrier * (1.0 + params.alpha) + 6.0 * jump
    ac = 2.0 / (params.relaxation * (params.kappa_eta * lam + curvature))
    return jnp.minimum(ch, ac)


def make_stepper(grid: Grid, boundary: Boundary, scheme: str, stabilization: float, dtype=jnp.float64,
                 slabs=None, order_parameter_stabilization: float | None = None) -> Stepper:
    """The step of the five fields in ``dtype`` (the working precision); the semi-implicit schemes move
    ``stabilization * c`` and ``order_parameter_stabilization * eta_i`` (default: the same A) to the implicit
    side; ``slabs``
    (:class:`phasefield.decomposition.Slabs`) splits them along x over the devices (the stencils exchange
    halos, the transforms are the slab ones)."""
    if scheme == "explicit":
        def init(params, fields):
            state = {n: jnp.asarray(fields[n], dtype) for n in FIELDS}
            return laid_out(slabs, {"state": state, "history": {}, "cache": {}}, grid.shape)

        def step(params, carry, dt):
            state = carry["state"]
            etas = [state[n] for n in ORDER_PARAMETERS]
            d_c, d_etas = chemical_derivatives(state["c"], etas, params)
            mu = d_c - params.kappa_c * laplacian(state["c"], grid, boundary)
            dt = jnp.asarray(dt, dtype)
            new = {"c": state["c"] + dt * params.mobility * laplacian(mu, grid, boundary)}
            for name, eta, d in zip(ORDER_PARAMETERS, etas, d_etas):
                new[name] = eta - dt * params.relaxation * (d - params.kappa_eta * laplacian(eta, grid, boundary))
            return laid_out(slabs, {**carry, "state": new}, grid.shape)

        return Stepper(init, step, lambda params, carry: dict(carry["state"]),
                       lambda params: explicit_limit(grid, params), 1)

    basis = SpectralBasis(grid, boundary, dtype, slabs)
    lap = basis.laplacian_symbol
    eta_stabilization = stabilization if order_parameter_stabilization is None else order_parameter_stabilization

    def symbols(params):
        out = {"c": (params.mobility * (-params.kappa_c * lap * lap + stabilization * lap), params.mobility * lap)}
        for name in ORDER_PARAMETERS:
            out[name] = (params.relaxation * (params.kappa_eta * lap - eta_stabilization), -params.relaxation)
        return out

    def pointwise(params, state):
        etas = [state[n] for n in ORDER_PARAMETERS]
        d_c, d_etas = chemical_derivatives(state["c"], etas, params)
        out = {"c": d_c - stabilization * state["c"]}
        for name, eta, d in zip(ORDER_PARAMETERS, etas, d_etas):
            out[name] = d - eta_stabilization * eta
        return out

    return semi_implicit_fields(FIELDS, basis, symbols, pointwise, _order(scheme))


@register_scenario("pfhub_ostwald", Config, SolverConfig)
def build(config: Config, solver: SolverConfig) -> Simulation:
    grid = Grid(tuple(config.shape), config.spacing)
    boundary = Boundary.uniform(2, "periodic" if config.variant == "a" else "neumann")
    stepper = make_stepper(grid, boundary, solver.scheme, solver.stabilization, jnp.dtype(solver.precision),
                           slabs_for(solver.decomposition, grid.shape), solver.order_parameter_stabilization)
    x, y = grid.coordinates()

    def diagnostics(params, carry):
        state = {k: v.astype(jnp.float64) for k, v in carry["state"].items()}
        etas = [state[n] for n in ORDER_PARAMETERS]
        return {
            "free_energy": free_energy(state, grid, boundary, params),
            "total_mass": jnp.sum(state["c"]) * grid.cell_volume,
            "precipitate_fraction": jnp.mean(sum(interpolation(e) for e in etas)),
            "eta_max": jnp.max(jnp.stack([jnp.max(e) for e in etas])),
        }

    def initial_fields():
        return {k: np.broadcast_to(v, grid.shape).copy() for k, v in initial_condition(x, y, config).items()}

    info = {"c": Quantity("1", "composition")}
    info.update({n: Quantity("1", f"order parameter {n[-1]} (precipitate orientation variant)")
                 for n in ORDER_PARAMETERS})
    return Simulation(
        name=config.name,
        grid=grid,
        parameters=config,
        stepper=stepper,
        initial_fields=initial_fields,
        field_info=info,
        diagnostics=diagnostics,
        scalar_info={
            "free_energy": Quantity("1", "PFHub F = int f_chem + kappa_c/2 |grad c|^2"
                                         " + sum kappa_eta/2 |grad eta_i|^2"),
            "total_mass": Quantity("1", "int c dV (conserved)"),
            "precipitate_fraction": Quantity("1", "mean of h = sum_i h(eta_i)"),
            "eta_max": Quantity("1", "largest order parameter"),
        },
        scales={"length": (1.0, "1"), "time": (1.0, "1"), "energy_density": (1.0, "1")},
        lyapunov="free_energy",
    )
