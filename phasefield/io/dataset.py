"""``run.h5`` as an :class:`xarray.Dataset` (optional: ``pip install phasefield[post]``)."""
from __future__ import annotations

import numpy as np

from phasefield.io.hdf5 import AXES, open_run_file, read_scalars


def open_run(path):
    """The run in ``path`` as an ``xarray.Dataset``, read into memory.

    Coordinates: ``time`` (the frames, with ``step``), ``x``, ``y`` [, ``z``] (cell centres, in the units
    the file stores, attribute ``units``), and ``record_time`` (with ``record_step``) of the scalars.
    Data variables: every field on ``(time, x, y[, z])`` and every scalar on ``record_time``, each with
    its ``units`` and ``description``. The file's root attributes (scenario, config, scale_*, status)
    become the dataset's. Only complete frames and records are read, so a running run reads consistently.

    >>> ds = open_run("outputs/dendrite/.../run.h5")
    >>> ds.xi.sel(time=10, method="nearest")          # one frame
    >>> ds.c.isel(time=-1).sel(y=50e-6, method="nearest")   # a line profile across the cell
    """
    try:
        import xarray as xr
    except ImportError:
        raise ImportError("phasefield.io.open_run needs xarray: pip install 'phasefield[post]' "
                          "(or pip install xarray); the plain arrays are in phasefield.io.read_run") from None
    with open_run_file(path) as f:
        frames = f["time"].shape[0]
        axes = [a for a in AXES if a in f["grid"]]
        coords = {
            "time": ("time", f["time"][:frames], _plain(f["time"].attrs)),
            "step": ("time", f["step"][:frames], _plain(f["step"].attrs)),
            **{a: (a, f["grid"][a][()], _plain(f["grid"][a].attrs)) for a in axes},
        }
        scalars = read_scalars(f)
        coords["record_time"] = ("record_time", scalars.pop("time"), _plain(f["scalars/time"].attrs))
        coords["record_step"] = ("record_time", scalars.pop("step"), _plain(f["scalars/step"].attrs))
        data = {name: (("time", *axes), ds[:frames], _plain(ds.attrs)) for name, ds in f["fields"].items()}
        data.update({name: ("record_time", values, _plain(f["scalars"][name].attrs))
                     for name, values in scalars.items()})
        attrs = _plain(f.attrs)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _plain(attrs) -> dict:
    """HDF5 attributes as plain Python values (dimension-scale bookkeeping left out)."""
    out = {}
    for key, value in attrs.items():
        if key in ("CLASS", "NAME", "REFERENCE_LIST", "DIMENSION_LIST", "DIMENSION_LABELS"):
            continue
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out
