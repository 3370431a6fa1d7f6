"""Grid operators: finite-volume stencils and spectral transforms, one implementation for 2D and 3D."""
from phasefield.operators.stencils import (
    divergence,
    face_average,
    face_gradient,
    flux_divergence,
    gradient,
    laplacian,
    pad_axis,
)
from phasefield.operators.elliptic import solve_potential
from phasefield.operators.spectral import SpectralBasis

__all__ = [
    "SpectralBasis",
    "divergence",
    "face_average",
    "face_gradient",
    "flux_divergence",
    "gradient",
    "laplacian",
    "pad_axis",
    "solve_potential",
]
