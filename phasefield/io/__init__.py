"""HDF5 output (the ``run.h5`` contract of the README) and checkpoints."""
from phasefield.io.hdf5 import RunWriter, read_checkpoint, read_run

__all__ = ["RunWriter", "read_checkpoint", "read_run"]
