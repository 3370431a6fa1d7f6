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

Slabs (a :class:`phasefield.decomposition.Slabs` given): the field is split along axis 0 over ``P``
devices. ``forward`` transforms the whole axes ``1..d-1`` on each device, transposes with one ``all_to_all``
(axis 0 whole, axis 1 split) and transforms axis 0; the coefficients stay split along axis 1, where the
symbols act pointwise, and ``inverse`` runs the same steps backwards. Axis 1 of the coefficients is padded
with zeros to a multiple of ``P`` when its length is not one (the ``n/2 + 1`` of a periodic 2D grid):
``spectral_shape`` and ``laplacian_symbol`` are the padded ones.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.fft import dct

from phasefield.decomposition import AXIS
from phasefield.grid import DIRICHLET, NEUMANN, PERIODIC, Boundary, Grid


class SpectralBasis:
    """Forward/inverse transform and Laplacian symbol for a grid and boundary condition; with ``slabs``
    (:class:`phasefield.decomposition.Slabs`) for fields split along axis 0 over its devices."""

    def __init__(self, grid: Grid, boundary: Boundary, dtype=jnp.float64, slabs=None):
        self.grid = grid
        self.slabs = slabs
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
        shape = list(grid.shape)
        if self.periodic_axes:
            shape[self.periodic_axes[-1]] = shape[self.periodic_axes[-1]] // 2 + 1
        self._coefficients_1 = shape[1] if grid.ndim > 1 else 0  # unpadded length of axis 1
        if slabs is not None:
            slabs.check(grid.shape, "grid.shape")
            shape[1] = -(-shape[1] // slabs.count) * slabs.count
        self.spectral_shape = tuple(shape)
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
            eig = np.pad(eig, (0, self.spectral_shape[axis] - eig.size), mode="edge")  # slab padding: finite 1/symbol
            shape[axis] = eig.size
            total = total + eig.reshape(shape)
        return jnp.asarray(total, self.dtype)

    def forward(self, u):
        """Real field -> coefficients (complex when any axis is periodic)."""
        if self.slabs is None:
            return self._forward_axes(u, range(self.grid.ndim))
        return self._split(self._forward_slab, 0, 1)(u)

    def inverse(self, coefficients):
        """Coefficients -> real field on the grid."""
        if self.slabs is None:
            return self._inverse_axes(coefficients, range(self.grid.ndim))
        return self._split(self._inverse_slab, 1, 0)(coefficients)

    def constrain_field(self, u):
        """``u`` laid out as the fields (split along axis 0 with slabs; unchanged without)."""
        return u if self.slabs is None else self.slabs.constrain(u, 0)

    def constrain_coefficients(self, coefficients):
        """``coefficients`` laid out as ``forward`` returns them (split along axis 1 with slabs)."""
        return coefficients if self.slabs is None else self.slabs.constrain(coefficients, 1)

    def constrain_replicated(self, value):
        """``value`` whole on every device of the slabs (a step's scalars: one layout from the first chunk on)."""
        return value if self.slabs is None else self.slabs.constrain(value, None)

    def _forward_axes(self, u, axes):
        """Transform the ``axes`` of ``u`` (whole on this device): DCTs, then the (real-to-complex) FFTs."""
        axes = tuple(axes)
        for axis in self.real_axes:
            if axis in axes:
                if axis in self._signs:
                    u = u * self._signs[axis]
                u = dct(u, type=2, axis=axis, norm="ortho")
        periodic = [a for a in self.periodic_axes if a in axes]
        if periodic:
            # the last periodic axis is real-to-complex; it always comes in the first call (axes 1..d-1 or all)
            u = jnp.fft.rfftn(u, axes=periodic) if self.periodic_axes[-1] in periodic else jnp.fft.fftn(u, axes=periodic)
        return u

    def _inverse_axes(self, u, axes):
        """Invert the transform of the ``axes`` of ``u`` (whole on this device), in the reverse order."""
        axes = tuple(axes)
        periodic = [a for a in self.periodic_axes if a in axes]
        if periodic:
            if self.periodic_axes[-1] in periodic:
                u = jnp.fft.irfftn(u, s=[self.grid.shape[a] for a in periodic], axes=periodic)
            else:
                u = jnp.fft.ifftn(u, axes=periodic)
        for axis in self.real_axes:
            if axis in axes:
                u = idct(u, axis)
                if axis in self._signs:
                    u = u * self._signs[axis]
        return u.astype(self.dtype) if not jnp.iscomplexobj(u) else u

    def _split(self, function, split_in: int, split_out: int):
        """``function`` of one device's block, on the slab mesh: input split along ``split_in``, output along
        ``split_out``."""
        ndim = self.grid.ndim
        return jax.shard_map(function, mesh=self.slabs.mesh, in_specs=self.slabs.spec(ndim, split_in),
                             out_specs=self.slabs.spec(ndim, split_out))

    def _forward_slab(self, block):
        """One device's rows -> its columns of the coefficients: local axes, transpose, axis 0."""
        u = self._forward_axes(block, range(1, self.grid.ndim))
        pad = [(0, 0)] * self.grid.ndim
        pad[1] = (0, self.spectral_shape[1] - u.shape[1])
        u = jax.lax.all_to_all(jnp.pad(u, pad), AXIS, split_axis=1, concat_axis=0, tiled=True)
        return self._forward_axes(u, (0,))

    def _inverse_slab(self, block):
        """One device's columns of the coefficients -> its rows of the field."""
        u = self._inverse_axes(block, (0,))
        u = jax.lax.all_to_all(u, AXIS, split_axis=0, concat_axis=1, tiled=True)
        u = jax.lax.slice_in_dim(u, 0, self._coefficients_1, axis=1)
        return self._inverse_axes(u, range(1, self.grid.ndim))


def idct(x, axis: int):
    """``jax.scipy.fft.idct(x, type=2, axis=axis, norm="ortho")`` (Makhoul's FFT form), the same operations
    but for its last stage: the even and odd halves interleaved by a stack and a reshape, where jax scatters
    them into a zero field. Reverse mode transposes each such scatter with a copy of a zero field, and XLA
    made those copies at the start of the backward pass and held them through it (20 fields, 2.5 MiB, of
    the dendrite's 128^2 step backward, from the recomputed Allen-Cahn stage's DCTs)."""
    if jnp.iscomplexobj(x):
        return jax.lax.complex(idct(x.real, axis), idct(x.imag, axis))
    axis = axis % x.ndim
    n = x.shape[axis]
    others = [a for a in range(x.ndim) if a != axis]
    factor = jnp.expand_dims(jnp.concatenate([jnp.full((1,), 4, x.dtype), jnp.full((n - 1,), 2, x.dtype)]), others)
    x = x / jnp.sqrt(factor * n)
    k = jnp.expand_dims(jnp.arange(n, dtype=x.dtype), others).astype(jnp.result_type(x.dtype, 1j))
    w4 = jnp.exp(-.5j * np.pi * k / jnp.asarray(n, k.dtype))
    x = x.astype(w4.dtype) / w4 * 2 * n
    x = jnp.fft.ifft(x, axis=axis).real
    # out[2i] = x[i], out[2i + 1] = x[n - 1 - i]
    half = (n + 1) // 2
    evens = jax.lax.slice_in_dim(x, 0, half, axis=axis)
    odds = jax.lax.rev(jax.lax.slice_in_dim(x, half, n, axis=axis), (axis,))
    if n % 2:
        odds = jnp.concatenate([odds, jnp.zeros_like(jax.lax.slice_in_dim(evens, 0, 1, axis=axis))], axis)
    pairs = jnp.stack([evens, odds], axis=axis + 1)
    return jax.lax.slice_in_dim(pairs.reshape(x.shape[:axis] + (2 * half,) + x.shape[axis + 1:]), 0, n, axis=axis)
