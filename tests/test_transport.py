"""Li+ drift-diffusion step (Slotboom backward Euler): Sand's time of a transport-only run
(physics.md 3.6 item 6), the constant-flux profile, conservation and the drift equilibrium."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc

from phasefield.grid import Grid
from phasefield.physics.transport import drift_diffusion_step

jax.config.update("jax_enable_x64", True)


def constant_flux_run(t_end, steps, q=1.0, length=10.0, cells=400):
    """A 1D electrolyte (D = 1, c0 = 1) with flux q leaving through the x = 0 wall (the electrode,
    xi frozen, no migration) and a reservoir at x = length. Returns (grid, c at t_end, surface c per step)."""
    grid = Grid((cells, 1), (length / cells, 1.0))
    h = grid.spacing[0]
    sink = jnp.zeros(grid.shape).at[0].set(q / h)  # the wall flux as the wall cell's sink
    ones = jnp.ones(grid.shape)
    dt = t_end / steps

    def step(c, _):
        c = drift_diffusion_step(c, dt, ones, ones, grid, True, 1.0, sink=sink, tolerance=1e-12).transported
        return c, c[0, 0] - q * h / 2  # the wall value: half a cell beyond the wall cell at gradient q/D

    c, surface = jax.lax.scan(step, ones, None, length=steps)
    return grid, c, np.asarray(surface)


def test_sand_time_of_a_transport_only_run():
    """The surface concentration reaches zero at tau = pi D (c0 / (2 q))^2 (i = nFq) within 3 %."""
    tau = np.pi / 4
    steps = 440
    _, _, surface = constant_flux_run(1.1 * tau, steps)
    times = 1.1 * tau * np.arange(1, steps + 1) / steps
    k = np.argmax(surface <= 0)
    assert k > 0, "the surface never depleted"
    sand = np.interp(0.0, surface[k - 1:k + 1][::-1], times[k - 1:k + 1][::-1])
    assert abs(sand / tau - 1) < 0.03, sand / tau
    # and the surface follows c0 - 2 q sqrt(t / (pi D)) before
    early = times < 0.9 * tau
    assert np.max(np.abs(surface[early] - (1 - 2 * np.sqrt(times[early] / np.pi)))) < 0.01


def test_constant_flux_profile_and_li_balance():
    """At t = tau/2 the profile is c0 - 2q[sqrt(t/pi) e^{-x^2/4t} - (x/2) erfc(x/2 sqrt t)] within 1 % of c0."""
    t = np.pi / 8
    grid, c, _ = constant_flux_run(t, 200)
    x = grid.axis_coordinates(0)
    exact = 1 - 2 * (np.sqrt(t / np.pi) * np.exp(-x**2 / (4 * t)) - x / 2 * np.asarray(erfc(x / (2 * np.sqrt(t)))))
    assert np.max(np.abs(np.asarray(c)[:, 0] - exact)) < 0.01


def test_closed_cell_conserves_and_drift_reaches_boltzmann_equilibrium():
    """No-flux walls, a fixed potential: total c is conserved to round-off, and c tends to
    c ~ exp(-f phi) (zero drift-diffusion flux), the Slotboom weight."""
    grid = Grid((64, 8), (0.5, 0.5))
    x, y = grid.coordinates()
    f_phi = 2.0 * np.sin(x / 32.0 * np.pi) * np.cos(y / 4.0 * np.pi) + 0 * y
    weight = jnp.asarray(np.exp(-(f_phi - f_phi.max())))
    c = jnp.ones(grid.shape)
    total = float(jnp.sum(c))
    diffusivity = jnp.full(grid.shape, 2.0)
    # one compiled step (eager dispatch of the solver's set-up and loops costs seconds per step)
    step = jax.jit(lambda c: drift_diffusion_step(c, 50.0, diffusivity, weight, grid, False).transported)
    for _ in range(12):
        c = step(c)
        assert abs(float(jnp.sum(c)) / total - 1) < 1e-13
    boltzmann = weight * total / float(jnp.sum(weight))
    assert float(jnp.max(jnp.abs(c - boltzmann))) < 1e-6
    assert float(jnp.min(c)) > 0
