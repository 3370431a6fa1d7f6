"""HDF5 output (the ``run.h5`` contract of the README) and checkpoints; ``open_run`` as an xarray Dataset."""
from phasefield.io.dataset import open_run
from phasefield.io.hdf5 import CheckpointError, RunWriter, open_run_file, read_checkpoint, read_run

__all__ = ["CheckpointError", "RunWriter", "open_run", "open_run_file", "read_checkpoint", "read_run"]
