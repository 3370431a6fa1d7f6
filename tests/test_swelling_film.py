"""Alloy-anode swelling, the thin-film check (issue 16 item 5): an amorphous-Si film on a stiff substrate
(``scenario=swelling_film``, one lithiation-delithiation cycle) is in equal biaxial stress, so J2 plasticity
puts its stress at ``-sigma_Y(c)`` on lithiation and ``+sigma_Y(c)`` on delithiation, the elastic branches
follow the biaxial modulus ``M = E / (1 - nu)``, and the potential hysteresis at equal ``c`` is the
stress-potential coupling ``(2/3) Omega / F`` (Sethuraman et al., J. Power Sources 195 (2010) 5062 and
J. Electrochem. Soc. 157 (2010) A1253). Every expected value is computed here from the preset's numbers."""
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from phasefield.config import ConfigError, validate_run
from phasefield.runner import build
from scenario_runs import run_scenario

ROOT = Path(__file__).resolve().parents[1]
FARADAY = 96485.33212  # C/mol
RECORD = 60.0  # s: one record per step of the preset's solver (dt_max)


@pytest.fixture(scope="module")
def preset():
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        composed = OmegaConf.to_container(compose("config", overrides=["scenario=swelling_film"]))
    return composed["scenario"], composed["solver"]


@pytest.fixture(scope="module")
def cycle(preset):
    """The preset's cycle: the film's scalars and its material laws, written out from the preset's numbers."""
    scenario, solver = dict(preset[0]), preset[1]
    name, t_end = scenario.pop("name"), scenario.pop("t_end")
    _, scalars, _, _ = run_scenario(name, t_end, RECORD, solver, **scenario)
    return Film(scenario), scalars


class Film:
    """The film's small-strain laws: ``e*(c)`` (Hencky), ``M(c) = E(c) / (1 - nu)``, ``sigma_Y(c)``, Omega(c)."""

    def __init__(self, s):
        self.s = s

    def eigenstrain(self, c):
        beta = self.s["volume_expansion"]
        return (np.log1p(beta * c) - np.log1p(beta * self.s["initial_fraction"])) / 3.0

    def eigenstrain_slope(self, c):
        beta = self.s["volume_expansion"]
        return beta / (3.0 * (1.0 + beta * c))

    def biaxial_modulus(self, c):
        s = self.s
        return (s["host_modulus"] + (s["lithiated_modulus"] - s["host_modulus"]) * c) / (1.0 - s["particle_poisson"])

    def biaxial_modulus_slope(self):
        s = self.s
        return (s["lithiated_modulus"] - s["host_modulus"]) / (1.0 - s["particle_poisson"])

    def yield_stress(self, c):
        s = self.s
        return s["host_yield_stress"] + (s["lithiated_yield_stress"] - s["host_yield_stress"]) * c

    def partial_molar_volume(self, c):
        """``Omega = 3 (d e*/dc) / c_max`` (m^3/mol): the volume the eigenstrain law gives a mole of Li."""
        return 3.0 * self.eigenstrain_slope(c) / self.s["max_concentration"]


def branches(film, scalars):
    """Indices of the records: the elastic start, the lithiation plateau, the turn, the elastic unloading and
    the delithiation plateau, split at the analytic yield points (not at the model's own stress)."""
    c, direction = scalars["film_concentration"], scalars["current_direction"]
    turn = int(np.argmax(direction < 0))  # the last lithiation record (the next step delithiates)
    fine = np.linspace(film.s["initial_fraction"], 1.0, 20001)
    first_yield = fine[np.argmax(film.biaxial_modulus(fine) * film.eigenstrain(fine) >= film.yield_stress(fine))]
    # unloading from the turn with the plastic strain frozen: sigma = -M(c) (e*(c) + p) until it meets +Y(c)
    plastic = -scalars["film_stress"][turn] / film.biaxial_modulus(c[turn]) - film.eigenstrain(c[turn])
    below = fine[fine < c[turn]][::-1]
    unloading = -film.biaxial_modulus(below) * (film.eigenstrain(below) + plastic)
    tension_yield = below[np.argmax(unloading >= film.yield_stress(below))]
    index = np.arange(len(c))
    return {
        "elastic_start": index[(index > 0) & (index < turn) & (c < first_yield - 0.002)],
        "lithiation": index[(index <= turn) & (c > first_yield + 0.01)],
        "turn": turn,
        "unloading": index[(index >= turn) & (c > tension_yield + 0.002)],
        "delithiation": index[(index > turn) & (c < tension_yield - 0.01)],
        "plastic_strain": plastic,
        "tension_yield": tension_yield,
    }


def test_film_stress_plateaus_at_minus_and_plus_the_yield_stress(cycle):
    """Equal biaxial stress (sigma_xx = 0, sigma_yy = sigma_zz = sigma) has von Mises |sigma|, so the film
    flows at sigma = -sigma_Y(c) on lithiation and +sigma_Y(c) on delithiation (within 10 %; measured 0.7 %).
    The preset's yield law gives Sethuraman's plateaus: plastic flow from about -1.75 GPa on lithiation and
    tension of about +1 GPa when the film yields on delithiation."""
    film, scalars = cycle
    part = branches(film, scalars)
    c, sigma = scalars["film_concentration"], scalars["film_stress"]
    lithiation, delithiation = part["lithiation"], part["delithiation"]
    assert len(lithiation) > 50 and len(delithiation) > 50
    assert c[lithiation].max() > 0.85 and c[delithiation].min() < 0.1  # the plateaus span the cycle
    np.testing.assert_allclose(sigma[lithiation], -film.yield_stress(c[lithiation]), rtol=0.10)
    np.testing.assert_allclose(sigma[delithiation], film.yield_stress(c[delithiation]), rtol=0.10)
    assert sigma.min() == pytest.approx(-1.75, rel=0.10)
    assert sigma[delithiation[0]] == pytest.approx(1.0, rel=0.10)
    assert scalars["half_cycles"][-1] == 2  # the cycle finished


def test_film_elastic_branches_follow_the_biaxial_modulus(cycle):
    """Before yield the film's in-plane strain is held at zero, so sigma = -M(c) (e*(c) + p) with p the frozen
    in-plane plastic strain, ``M = E / (1 - nu)``: from the stress-free start (p = 0) sigma = -M e*, and on the
    unloading after the turn ``d sigma / dc = -M e*' - M' (e* + p) = -M e*' + (M'/M) sigma`` (the second term
    is E's dependence on c). Stresses within 3 % of the closed form, secant slopes within 5 %."""
    film, scalars = cycle
    part = branches(film, scalars)
    c, sigma = scalars["film_concentration"], scalars["film_stress"]
    start = part["elastic_start"]
    assert len(start) >= 1
    np.testing.assert_allclose(sigma[start], -film.biaxial_modulus(c[start]) * film.eigenstrain(c[start]), rtol=0.03)
    unloading = part["unloading"]
    assert len(unloading) >= 8
    expected = -film.biaxial_modulus(c[unloading]) * (film.eigenstrain(c[unloading]) + part["plastic_strain"])
    swing = np.ptp(expected)
    assert swing > 1.5  # GPa: from about -Y to about +Y
    np.testing.assert_allclose(sigma[unloading], expected, rtol=0, atol=0.03 * swing)
    dc = np.diff(c[unloading])
    middle = 0.5 * (c[unloading][1:] + c[unloading][:-1])
    sigma_middle = 0.5 * (sigma[unloading][1:] + sigma[unloading][:-1])
    slope = -film.biaxial_modulus(middle) * film.eigenstrain_slope(middle) \
        + film.biaxial_modulus_slope() / film.biaxial_modulus(middle) * sigma_middle
    np.testing.assert_allclose(np.diff(sigma[unloading]) / dc, slope, rtol=0.05)


def test_film_potential_hysteresis_is_the_stress_potential_coupling(cycle):
    """mu_el = -Omega sigma_h with sigma_h = 2 sigma / 3 in equal biaxial stress, so at equal c the electrode
    potential on delithiation (film at +Y) lies above the lithiation one (film at -Y) by
    ``(2/3) (Omega / F) (sigma_delith - sigma_lith)``; the chemical part cancels and the kinetic part is small
    at the preset's exchange current. ``Omega(c) = 3 e*'(c) / c_max`` (the eigenstrain law); within 10 %
    (measured about 1 %) at c = 0.1 ... 0.65, where both branches are plastic."""
    film, scalars = cycle
    part = branches(film, scalars)
    c, sigma, potential = scalars["film_concentration"], scalars["film_stress"], scalars["electrode_potential"]
    grid = np.linspace(0.1, 0.65, 12)

    def along(indices, values):
        order = np.argsort(c[indices])
        return np.interp(grid, c[indices][order], values[indices][order])

    lithiation, delithiation = part["lithiation"], part["delithiation"]
    assert c[lithiation].min() < grid[0] and c[delithiation].min() < grid[0] and c[delithiation].max() > grid[-1]
    hysteresis = along(delithiation, potential) - along(lithiation, potential)  # V
    stress_jump = (along(delithiation, sigma) - along(lithiation, sigma)) * 1e9  # Pa
    assert np.all(hysteresis > 0) and np.all(stress_jump > 1.5e9)
    coupling = hysteresis / stress_jump
    np.testing.assert_allclose(coupling, 2.0 / 3.0 * film.partial_molar_volume(grid) / FARADAY, rtol=0.10)


@pytest.mark.parametrize("override, key, allowed", [
    ({"collector_thickness": 0.0}, "scenario.collector_thickness", "bonded"),  # nothing to bond to
    ({"film_thickness": 0.1}, "scenario.film_thickness", "interior"),  # under 4 interface widths
    ({"film_thickness": 0.48}, "scenario.film_thickness", "electrolyte above"),  # no electrolyte above it
    ({"geometry": "slab"}, "scenario.geometry", "film"),
])
def test_invalid_film_input_is_rejected_before_compute(preset, override, key, allowed):
    scenario = {**preset[0], **override}
    with pytest.raises(ConfigError) as error:
        build(validate_run({"scenario": scenario, "solver": preset[1], "output": {}}))
    assert error.value.key == key and allowed in str(error.value.allowed)
