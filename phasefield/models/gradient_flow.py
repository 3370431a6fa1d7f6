"""Cahn-Hilliard and Allen-Cahn gradient flows of ``F = int f(u) + kappa/2 |grad u|^2``.

* Cahn-Hilliard (conserved):  ``du/dt = div(M grad mu)``,  ``mu = f'(u) - kappa lap u``.
* Allen-Cahn (non-conserved): ``du/dt = -L (f'(u) - kappa lap u)``.

With constant mobility both are ``du/dt = L_lin u + N(u)`` in the fast basis: the stiff
gradient term is implicit, ``f'`` explicit, and an optional stabilisation ``A`` moves
``A u`` from the explicit to the implicit side (Zhu et al., PRE 60, 3564 (1999)).

The model supplies ``f_prime(params, u)`` and ``coefficients(params) -> (mobility, kappa,
curvature_max)``, so every coefficient is a parameter leaf (sweepable, differentiable).
"""
from __future__ import annotations

from typing import Callable

from phasefield.grid import Boundary, Grid
from phasefield.operators import SpectralBasis, laplacian
from phasefield.schemes import Stepper, explicit_euler, semi_implicit


def _max_laplacian_eigenvalue(grid: Grid) -> float:
    return float(sum(4.0 / h**2 for h in grid.spacing))


def cahn_hilliard_stable_dt(grid: Grid, mobility, kappa, curvature_max):
    """Forward-Euler limit ``2 / (M lam (kappa lam + max f''))``, ``lam = sum 4/h^2`` (``max f'' >= 0``)."""
    lam = _max_laplacian_eigenvalue(grid)
    return 2.0 / (mobility * lam * (kappa * lam + curvature_max))


def allen_cahn_stable_dt(grid: Grid, mobility, kappa, curvature_max):
    """Forward-Euler limit ``2 / (L (kappa lam + max f''))`` (``max f'' >= 0``)."""
    lam = _max_laplacian_eigenvalue(grid)
    return 2.0 / (mobility * (kappa * lam + curvature_max))


def cahn_hilliard(grid: Grid, boundary: Boundary, f_prime: Callable, coefficients: Callable, scheme: str, dtype,
                  stabilization: float = 0.0, name: str = "c", slabs=None) -> Stepper:
    """Stepper for ``dc/dt = M lap(f'(c) - kappa lap c)`` (no-flux or periodic walls); ``slabs``
    (:class:`phasefield.decomposition.Slabs`) splits the grid along x over the devices."""
    if scheme == "explicit":
        def rhs(params, c):
            mobility, kappa, _ = coefficients(params)
            return mobility * laplacian(f_prime(params, c) - kappa * laplacian(c, grid, boundary), grid, boundary)

        return explicit_euler(name, rhs, dtype,
                              lambda params: cahn_hilliard_stable_dt(grid, *coefficients(params)), slabs)
    basis = SpectralBasis(grid, boundary, dtype, slabs)
    lap = basis.laplacian_symbol

    def symbols(params):
        mobility, kappa, _ = coefficients(params)
        return mobility * (-kappa * lap * lap + stabilization * lap), mobility * lap

    return semi_implicit(name, basis, symbols, lambda params, c: f_prime(params, c) - stabilization * c,
                         _order(scheme))


def allen_cahn(grid: Grid, boundary: Boundary, f_prime: Callable, coefficients: Callable, scheme: str, dtype,
               stabilization: float = 0.0, name: str = "phi") -> Stepper:
    """Stepper for ``dphi/dt = -L (f'(phi) - kappa lap phi)``."""
    if scheme == "explicit":
        def rhs(params, u):
            mobility, kappa, _ = coefficients(params)
            return -mobility * (f_prime(params, u) - kappa * laplacian(u, grid, boundary))

        return explicit_euler(name, rhs, dtype,
                              lambda params: allen_cahn_stable_dt(grid, *coefficients(params)))
    basis = SpectralBasis(grid, boundary, dtype)
    lap = basis.laplacian_symbol

    def symbols(params):
        mobility, kappa, _ = coefficients(params)
        return mobility * (kappa * lap - stabilization), -mobility

    return semi_implicit(name, basis, symbols, lambda params, u: f_prime(params, u) - stabilization * u,
                         _order(scheme))


def _order(scheme: str) -> int:
    orders = {"imex1": 1, "sbdf2": 2}
    if scheme not in orders:
        raise ValueError(f"unknown scheme {scheme!r}; allowed: explicit, imex1, sbdf2")
    return orders[scheme]
