"""Physical units at the config surface, model units inside: every conversion in one place.

Models work in um, s, V, MPa and concentrations over a reference; configs and HDF5 files speak
SI or the units battery scientists use (mA/cm^2, GPa, mAh/cm^2).
"""
from __future__ import annotations

FARADAY = 96485.33212  # C/mol
GAS_CONSTANT = 8.314462618  # J/(mol K)

MICRON = 1e-6  # m per um
MPA = 1e6  # Pa per MPa
GPA_IN_MPA = 1e3  # MPa per GPa
SECONDS_PER_HOUR = 3600.0


def current_density_to_si(milliamps_per_cm2):
    """mA/cm^2 -> A/m^2 (x 10)."""
    return milliamps_per_cm2 * 10.0


def current_density_from_si(amps_per_m2):
    """A/m^2 -> mA/cm^2 (/ 10)."""
    return amps_per_m2 / 10.0


def charge_from_si(coulombs_per_m2):
    """C/m^2 -> C/cm^2 (x 1e-4)."""
    return coulombs_per_m2 * 1e-4
