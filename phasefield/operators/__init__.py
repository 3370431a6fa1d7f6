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
from phasefield.operators.elasticity import (
    Elasticity,
    elastic_energy_density,
    hydrostatic_stress,
    isotropic_moduli,
    normal_stress,
    solve_elasticity,
    strain_from_displacement,
    stress_from_displacement,
    von_mises_stress,
)
from phasefield.operators.elliptic import solve_potential
from phasefield.operators.spectral import SpectralBasis

__all__ = [
    "Elasticity",
    "SpectralBasis",
    "divergence",
    "elastic_energy_density",
    "face_average",
    "face_gradient",
    "flux_divergence",
    "gradient",
    "hydrostatic_stress",
    "isotropic_moduli",
    "laplacian",
    "normal_stress",
    "pad_axis",
    "solve_elasticity",
    "solve_potential",
    "strain_from_displacement",
    "stress_from_displacement",
    "von_mises_stress",
]
