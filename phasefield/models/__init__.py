"""Scenario models; importing this package registers every scenario (:mod:`phasefield.registry`)."""
from phasefield.models import dendrite, dendrite_solid, pfhub_mms, spinodal, swelling  # noqa: F401
