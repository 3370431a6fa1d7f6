"""Fast transforms that diagonalise the stencil Laplacian of :mod:`stencils`.

Per axis, by boundary condition:

* periodic        -> FFT,  eigenvalue ``-(4/h^2) sin^2(pi k / n)``
* neumann (both)  -> DCT-II, ``-(4/h^2) sin^2(pi k / (2n))``  (mirror ghost ``u_-1 = u_0``)
* dirichlet 0 (both) -> DCT-II of ``(-1)^i u_i``, ``-(4/h^2) cos^2(pi k / (2n))``
  (ghost ``u_-1 = -u_0``; the sign flip turns it into the mirrored problem)

Because these are the exact symbols of the discrete Laplacian, a semi-implicit spectral
step and an explicit stencil step share one spatial discretisation: their difference is
pure time error. (A continuous ``-k^2`` symbol would also ring at the walls of the
non-periodic PFHub initial condition.)
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.fft import dct, idct

from phasefield.grid import DIRICHLET, NEUMANN, PERIODIC, Boundary, Grid


class SpectralBasis:
    """Forward/inverse transform and Laplacian symbol for a grid and boundary condition."""

    def __init__(self, grid: Grid, boundary: Boundary, dtype=jnp.float64):
        self.grid = grid
        self.dtype = jnp.dtype(dtype)
        self.kinds = []
        for axis in range(grid.ndim):
            low, high = boundary.sides[axis]
            kind = boundary.axis_kind(axis)
            if kind == DIRICHLET and (low.value != 0.0 or high.value != 0.0):
                kind = "mixed"
            if kind not in (PERIODIC, NEUMANN, DIRICHLET):
                raise ValueError(
                    f"axis {axis}: no fast transform for boundary {low}/{high}; "
                    "spectral solves need periodic, no-flux or homogeneous Dirichlet on both sides"
                )
            self.kinds.append(kind)
        self.periodic_axes = tuple(a for a, k in enumerate(self.kinds) if k == PERIODIC)
        self.real_axes = tuple(a for a, k in enumerate(self.kinds) if k != PERIODIC)
        self._signs = {a: self._alternating(a) for a, k in enumerate(self.kinds) if k == DIRICHLET}
        self.laplacian_symbol = self._laplacian_symbol()

    def _alternating(self, axis):
        shape = [1] * self.grid.ndim
        shape[axis] = self.grid.shape[axis]
        return jnp.asarray((-1.0) ** np.arange(self.grid.shape[axis]), self.dtype).reshape(shape)

    def _axis_eigenvalues(self, axis: int) -> np.ndarray:
        n, h = self.grid.shape[axis], self.grid.spacing[axis]
        kind = self.kinds[axis]
        if kind == PERIODIC:
            count = n // 2 + 1 if axis == self.periodic_axes[-1] else n  # rfft on the last periodic axis
            k = np.arange(count)
            return -(4.0 / h**2) * np.sin(np.pi * k / n) ** 2
        k = np.arange(n)
        if kind == NEUMANN:
            return -(4.0 / h**2) * np.sin(np.pi * k / (2 * n)) ** 2
        return -(4.0 / h**2) * np.cos(np.pi * k / (2 * n)) ** 2

    def _laplacian_symbol(self):
        total = 0.0
        for axis in range(self.grid.ndim):
            shape = [1] * self.grid.ndim
            eig = self._axis_eigenvalues(axis)
            shape[axis] = eig.size
            total = total + eig.reshape(shape)
        return jnp.asarray(total, self.dtype)

    def forward(self, u):
        """Real field -> coefficients (complex when any axis is periodic)."""
        for axis in self.real_axes:
            if axis in self._signs:
                u = u * self._signs[axis]
            u = dct(u, type=2, axis=axis, norm="ortho")
        if self.periodic_axes:
            u = jnp.fft.rfftn(u, axes=self.periodic_axes)
        return u

    def inverse(self, coefficients):
        """Coefficients -> real field on the grid."""
        u = coefficients
        if self.periodic_axes:
            sizes = [self.grid.shape[a] for a in self.periodic_axes]
            u = jnp.fft.irfftn(u, s=sizes, axes=self.periodic_axes)
        for axis in self.real_axes:
            u = idct(u, type=2, axis=axis, norm="ortho")
            if axis in self._signs:
                u = u * self._signs[axis]
        return u.astype(self.dtype)
