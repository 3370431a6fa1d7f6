"""HDF5 output (the ``run.h5`` contract of the README) and checkpoints."""
from phasefield.io.hdf5 import CheckpointError, RunWriter, read_checkpoint, read_run

__all__ = ["CheckpointError", "RunWriter", "read_checkpoint", "read_run"]
