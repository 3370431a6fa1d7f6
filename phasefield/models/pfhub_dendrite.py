"""PFHub benchmark 3a (revision 1): dendritic growth into an undercooled melt (Karma & Rappel 1998).

From usnistgov/pfhub ``benchmarks/benchmark3.ipynb`` (shared/pfhub.md does not cover BM3; the
uploads quoted in experiments/pfhub.py are MEMPHIS, memphis-snl/memphis ``benchmark/BM_003``, and
MOOSE-itgreenquist, itgreenquist/moose ``benchmark_uploads/prob_3/time_vals.csv``):

* ``F = int [1/2 W(n)^2 |grad phi|^2 + f_chem(phi, U)] dV``,
  ``f_chem = -phi^2/2 + phi^4/4 + lambda U phi (1 - 2 phi^2/3 + phi^4/5)``;
  ``phi = +1`` solid, ``-1`` liquid; ``U = (T - T_m) / (L / c_p)``;
* ``W(n) = W0 a(n)``, ``a = 1 + eps_m cos(m (theta - theta0))``, ``tan theta = n_y / n_x``, ``tau(n) = tau0 a^2``;
* ``tau(n) dphi/dt = [phi - lambda U (1 - phi^2)](1 - phi^2) + div(W^2 grad phi)
  + d/dx(|grad phi|^2 W dW/d(phi_x)) + d/dy(|grad phi|^2 W dW/d(phi_y))``;
* ``dU/dt = D lap U + 1/2 dphi/dt``;
* ``W0 = 1, m = 4, eps_4 = 0.05, theta0 = 0, tau0 = 1, D = 10, Delta = -0.3``,
  ``lambda = D tau0 / (0.6267 W0^2)``;
* a quarter seed of radius 8 (``phi = 0``) in the lower-left corner, "interface width of one unit":
  here ``phi = tanh((8 - r) / sqrt(2))`` (the equilibrium profile for ``W0 = 1``); ``U = Delta`` everywhere;
* domain ``[0, 960]^2``, no flux for ``phi`` and ``U`` on every wall; run to ``t = 1500``;
* outputs: ``F``, the solid fraction ``int (phi + 1)/2 dV`` over the domain area, the tip position
  along ``y = 0`` (PFHub names the ``phi = 0.5`` contour in the submission text but defines the
  interface as ``phi = 0`` elsewhere; we report the ``phi = 0`` crossing, linearly interpolated on the
  row of cells next to the wall ``y = 0``) and the tip velocity (the crossing's speed in the last step,
  ``-(dphi/dt) / (dphi/dx)``).

Scheme: ``phi`` by forward Euler (the flux ``W^2 grad phi + W W' grad phi^perp`` on cell faces,
:func:`face_flux_divergence`: compact, the 5-point Laplacian without anisotropy), then ``U`` by
backward Euler in the cosine basis with the latent-heat
source ``(phi' - phi) / 2`` (so the diffusion limit ``h^2 / 4D`` does not bind and ``U + phi/2`` is
conserved exactly); dt is limited by the ``phi`` equation (``stable_dt``). Nondimensional, as in
the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, PrecisionTimeSolverConfig, option, scenario_parameters
from phasefield.decomposition import laid_out, slabs_for
from phasefield.grid import Boundary, Grid
from phasefield.operators import SpectralBasis, gradient
from phasefield.operators.stencils import neighbours
from phasefield.registry import register_scenario
from phasefield.schemes import Stepper
from phasefield.simulation import Quantity, Simulation

KARMA_RAPPEL = 0.6267  # lambda = D tau0 / (a1 a2 W0^2) ... PFHub's 0.6267 (thin-interface limit, no kinetics)
NEUMANN = Boundary.uniform(2, "neumann")


@scenario_parameters
@dataclass
class Config:
    """``scenario=pfhub_dendrite``: PFHub benchmark 3a (anisotropic Allen-Cahn + heat)."""

    name: str = option("pfhub_dendrite", help="scenario name")
    shape: list[int] = option(lambda: [960, 960], min=8, help="cells per axis (PFHub: a 960 x 960 domain)")
    spacing: float = option(1.0, min=1e-3, max=1e3, static=True, help="cell size")
    interface_width: float = option(1.0, min=0.0, exclusive=True, help="W0")
    relaxation_time: float = option(1.0, min=0.0, exclusive=True, help="tau0")
    anisotropy: float = option(0.05, min=0.0, max=0.0666, help="eps_m (below 1/(m^2 - 1): no missing orientations)")
    symmetry: int = option(4, min=1, help="m, rotational symmetry order")
    angle: float = option(0.0, help="theta0, offset of the crystal axes (radians)")
    diffusivity: float = option(10.0, min=0.0, exclusive=True, help="D, thermal diffusivity")
    undercooling: float = option(-0.3, help="Delta, the initial uniform U")
    seed_radius: float = option(8.0, min=0.0, help="radius of the quarter seed at the origin")
    t_end: float = option(1500.0, min=0.0, exclusive=True, help="simulated end time (PFHub: 1500)")

    def check(self, prefix: str):
        if len(self.shape) != 2:
            raise ConfigError(f"{prefix}.shape", self.shape, "a list of 2 cell counts")


def coupling(params: Config):
    """``lambda = D tau0 / (0.6267 W0^2)``."""
    return params.diffusivity * params.relaxation_time / (KARMA_RAPPEL * params.interface_width**2)


def chemical_energy_density(phi, u, params: Config):
    """``f_chem = -phi^2/2 + phi^4/4 + lambda U phi (1 - 2 phi^2/3 + phi^4/5)``."""
    return -0.5 * phi**2 + 0.25 * phi**4 + coupling(params) * u * phi * (1.0 - 2.0 * phi**2 / 3.0 + phi**4 / 5.0)


def anisotropy_factor(gx, gy, params: Config):
    """``a(n) = 1 + eps cos(m (theta - theta0))`` of the direction of ``(gx, gy)`` (1 where it vanishes)."""
    theta = jnp.arctan2(gy, gx)
    a = 1.0 + params.anisotropy * jnp.cos(params.symmetry * (theta - params.angle))
    return jnp.where(gx**2 + gy**2 > 1e-12, a, 1.0)


def seed(x, y, params: Config):
    """``phi = tanh((R - r) / (sqrt 2 W0))``: the quarter disc of radius ``R`` at the origin."""
    r = np.sqrt(x**2 + y**2)
    return np.tanh((params.seed_radius - r) / (np.sqrt(2.0) * params.interface_width))


def face_flux_divergence(phi, grid: Grid, params: Config):
    """``div J``, ``J = W^2 grad phi + W W'(theta) grad phi^perp`` (the Kobayashi flux of PFHub's three
    gradient terms), with ``J`` on faces: the normal derivative compact across the face, the tangential one
    the mean of the centred differences of the two cells; zero through the walls. Without anisotropy it
    is the 5-point Laplacian times ``W0^2``."""
    w2 = params.interface_width**2
    eps, m = params.anisotropy, params.symmetry
    walls = NEUMANN  # mirror ghosts: no flux
    h0, h1 = grid.spacing

    def flux(normal, tangential, along_x):
        gx, gy = (normal, tangential) if along_x else (tangential, normal)
        theta = jnp.arctan2(gy, gx) - params.angle
        present = gx**2 + gy**2 > 1e-12
        a = jnp.where(present, 1.0 + eps * jnp.cos(m * theta), 1.0)
        da = jnp.where(present, -eps * m * jnp.sin(m * theta), 0.0)
        return w2 * (a * a * normal - a * da * tangential) if along_x else w2 * (a * a * normal + a * da * tangential)

    # each cell's high face along each axis (the one to cell i + 1), in the cells' shape so that fields split
    # along x exchange one-row halos (stencils.neighbours): the normal derivative across it, the tangential
    # one the mean of the centred differences of its two cells; zero on the high wall, and the low face's flux
    # is the high face's of the cell below (zero on the low wall)
    centred = [(above - below) / (2 * h) for (below, above), h in
               ((neighbours(phi, walls, axis), h) for axis, h in ((0, h0), (1, h1)))]
    divergence = 0.0
    for axis, h in ((0, h0), (1, h1)):
        above = neighbours(phi, walls, axis)[1]
        tangential = centred[1 - axis]
        high = flux((above - phi) / h, 0.5 * (tangential + neighbours(tangential, walls, axis)[1]), axis == 0)
        index = jnp.arange(phi.shape[axis]).reshape([-1 if a == axis else 1 for a in range(2)])
        high = jnp.where(index == phi.shape[axis] - 1, 0.0, high)
        low = jnp.where(index == 0, 0.0, jnp.roll(high, 1, axis))
        divergence = divergence + (high - low) / h
    return divergence


def phase_rate(phi, u, grid: Grid, params: Config):
    """``dphi/dt`` of PFHub's Allen-Cahn equation (no-flux walls)."""
    flux = face_flux_divergence(phi, grid, params)
    gx, gy = gradient(phi, grid, NEUMANN)
    a = anisotropy_factor(gx, gy, params)
    lam = coupling(params)
    force = (phi - lam * u * (1.0 - phi**2)) * (1.0 - phi**2)
    return (force + flux) / (params.relaxation_time * a**2)


def free_energy(phi, u, grid: Grid, params: Config):
    """``F = sum_cells [W(n)^2/2 |grad phi|^2 + f_chem] dV`` (centred gradients)."""
    gx, gy = gradient(phi, grid, NEUMANN)
    w = params.interface_width * anisotropy_factor(gx, gy, params)
    density = 0.5 * w**2 * (gx**2 + gy**2) + chemical_energy_density(phi, u, params)
    return jnp.sum(density) * grid.cell_volume


def entry(row, index):
    """``row[index]`` of a traced ``index``, as the sum of the row masked to that entry: exact, and on a row split
    over devices an all-reduce of one number (indexing there gathers the whole field the row was cut from)."""
    return jnp.sum(jnp.where(jnp.arange(row.size) == index, row, 0.0))


def tip_position(phi, grid: Grid):
    """The ``phi = 0`` crossing along the row of cells next to ``y = 0`` (linear between cell centres)."""
    row = phi[:, 0]
    last = jnp.clip(jnp.sum(row > 0) - 1, 0, row.size - 2)
    left, right = entry(row, last), entry(row, last + 1)
    h = grid.spacing[0]
    fraction = jnp.where(left != right, left / (left - right), 0.0)
    return (last + 0.5) * h + jnp.clip(fraction, 0.0, 1.0) * h, last


def stable_dt(grid: Grid, params: Config):
    """Forward-Euler limit of the ``phi`` equation: the isotropic flux (``W0^2 (1 + eps)^2``), the
    anisotropic excess (the bound of :func:`phasefield.physics.electrodeposition.anisotropy_stable_dt`)
    and the force, whose slope
    ``1 - 3 phi^2 + 4 lambda U phi (1 - phi^2)`` is at least ``-(2 + 1.54 lambda |U|)`` for ``|U| <= |Delta|``
    (``max phi (1 - phi^2) = 0.385``), each over ``tau_min = tau0 (1 - eps)^2``."""
    lam_max = sum(4.0 / h**2 for h in grid.spacing)
    eps = params.anisotropy
    tau_min = params.relaxation_time * (1.0 - eps) ** 2
    w2 = params.interface_width**2
    m = params.symmetry
    diffusive = w2 * ((1.0 + eps) ** 2 * lam_max + eps * (m * m + 2) * (1.0 + eps) * 0.5 * lam_max)
    force = 2.0 + 1.54 * coupling(params) * abs(params.undercooling)
    return 2.0 * tau_min / (diffusive + force)


@register_scenario("pfhub_dendrite", Config, PrecisionTimeSolverConfig)
def build(config: Config, solver: PrecisionTimeSolverConfig) -> Simulation:
    """The simulation; ``solver.decomposition=slabs`` splits ``phi`` and ``U`` along x over the devices (the flux's
    stencils exchange halos, the backward-Euler solve of ``U`` uses the slab transforms). ``solver.precision``: the
    working precision of the fields (the diagnostics sum in float64)."""
    grid = Grid(tuple(config.shape), config.spacing)
    slabs = slabs_for(solver.decomposition, grid.shape)
    dtype = jnp.dtype(solver.precision)
    basis = SpectralBasis(grid, NEUMANN, dtype, slabs)
    x, y = grid.coordinates()
    area = float(np.prod(grid.lengths))

    def init(params, fields):
        state = {"phi": jnp.asarray(fields["phi"], dtype), "U": jnp.asarray(fields["U"], dtype)}
        return laid_out(slabs, {"state": state, "history": {}, "cache": {"tip_velocity": jnp.zeros((), dtype)}},
                        grid.shape)

    def step(params, carry, dt):
        phi, u = carry["state"]["phi"], carry["state"]["U"]
        dt = jnp.asarray(dt, dtype)
        rate = phase_rate(phi, u, grid, params)
        phi_new = phi + dt * rate
        # (1 - dt D lap) U' = U + (phi' - phi)/2
        implicit = 1.0 - dt * params.diffusivity * basis.laplacian_symbol
        u_new = basis.inverse(basis.forward(u + 0.5 * (phi_new - phi)) / implicit)
        _, last = tip_position(phi, grid)
        slope = (entry(phi[:, 0], last + 1) - entry(phi[:, 0], last)) / grid.spacing[0]
        falling = slope < 0
        mean_rate = 0.5 * (entry(rate[:, 0], last) + entry(rate[:, 0], last + 1))
        velocity = jnp.where(falling, -mean_rate / jnp.where(falling, slope, -1.0), 0.0)
        return laid_out(slabs, {"state": {"phi": phi_new, "U": u_new}, "history": {}, "cache": {"tip_velocity": velocity}},
                        grid.shape)

    def diagnostics(params, carry):
        phi, u = carry["state"]["phi"].astype(jnp.float64), carry["state"]["U"].astype(jnp.float64)
        tip, _ = tip_position(phi, grid)
        return {
            "free_energy": free_energy(phi, u, grid, params),
            "solid_fraction": jnp.sum(0.5 * (phi + 1.0)) * grid.cell_volume / area,
            "tip_position": tip,
            "tip_velocity": carry["cache"]["tip_velocity"],
            "enthalpy": jnp.sum(u - 0.5 * phi) * grid.cell_volume,
        }

    def initial_fields():
        phi = np.broadcast_to(seed(x, y, config), grid.shape).copy()
        return {"phi": phi, "U": np.full(grid.shape, config.undercooling)}

    return Simulation(
        name=config.name,
        grid=grid,
        parameters=config,
        stepper=Stepper(init, step, lambda params, carry: dict(carry["state"]),
                        lambda params: stable_dt(grid, params), 1,
                        change=lambda new, old: jnp.max(jnp.abs(new["state"]["phi"] - old["state"]["phi"]))),
        initial_fields=initial_fields,
        field_info={"phi": Quantity("1", "phase field (+1 solid, -1 liquid)"),
                    "U": Quantity("1", "dimensionless temperature (T - T_m) / (L / c_p)")},
        diagnostics=diagnostics,
        scalar_info={
            "free_energy": Quantity("1", "PFHub F = int W(n)^2/2 |grad phi|^2 + f_chem(phi, U)"),
            "solid_fraction": Quantity("1", "int (phi + 1)/2 dV / domain area"),
            "tip_position": Quantity("1", "phi = 0 crossing along y = 0"),
            "tip_velocity": Quantity("1", "speed of that crossing in the last step"),
            "enthalpy": Quantity("1", "int (U - phi/2) dV (conserved by the equations with no-flux walls)"),
        },
        scales={"length": (1.0, "1"), "time": (1.0, "1"), "energy_density": (1.0, "1")},
    )
