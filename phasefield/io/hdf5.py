"""``run.h5``: fields, time, step, scalars, grid, resolved config and a checkpoint.

Layout (see README, "Output"):

* ``/fields/<name>``   ``(n_frames, *grid_shape)``, one frame per chunk, gzip; attrs units, description
* ``/time``, ``/step``  simulated time (physical units) and step index of each frame
* ``/scalars/<name>``  diagnostics at every record, with ``/scalars/time`` and ``/scalars/step``
* ``/grid/<axis>``     cell-centre coordinates (physical units)
* ``/checkpoint``      link to the newest of ``/checkpoints/slot_0|1``: the model's state and scheme
                       history plus ``t``, ``step``, ``dt``, ``checksum`` (SHA-256) attributes
* root attributes      config (YAML), phasefield_version, scenario, scale_*, started, ended,
                       process_count, device_count, platform (where it last started),
                       finished, status, and stop_reason when a model's stop event ended the run

Every record is flushed, so a run that is killed leaves a file with every completed frame, and the
file can be read while the run writes it (the writer takes no HDF5 file lock; see ``RunLock``).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path

import h5py
import numpy as np

from phasefield import __version__

AXES = "xyz"


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _append(dataset, value):
    dataset.resize(dataset.shape[0] + 1, axis=0)
    dataset[-1] = value


class RunWriter:
    """Writes one run to ``path``; refuses to overwrite an existing file."""

    def __init__(self, path, simulation, field_dtypes: dict, config_yaml: str, compression: int = 4):
        """``field_dtypes``: the fields to store in ``/fields``, name -> dtype."""
        self.path = Path(path)
        self.simulation = simulation
        # 'x': fail if it exists; nothing a user wrote is lost. No HDF5 file lock: a run is guarded by its
        # own lock file (phasefield.runner.RunLock), and readers (post, h5py) can open it while it runs.
        self.file = h5py.File(self.path, "x", locking=False)
        f = self.file
        f.attrs.update(
            config=config_yaml,
            phasefield_version=__version__,
            scenario=simulation.name,
            started=_now(),
            finished=False,
            status="running",
        )
        for quantity, (size, units) in simulation.scales.items():
            f.attrs[f"scale_{quantity}"] = size
            f.attrs[f"scale_{quantity}_units"] = units
        length, length_units = simulation.scales.get("length", (1.0, "1"))
        time_units = simulation.scales.get("time", (1.0, "1"))[1]
        grid = f.create_group("grid")
        for axis in range(simulation.grid.ndim):
            ds = grid.create_dataset(AXES[axis], data=simulation.grid.axis_coordinates(axis) * length)
            ds.attrs["units"] = length_units
        shape = simulation.grid.shape
        fields = f.create_group("fields")
        for name, dtype in field_dtypes.items():
            info = simulation.field_info[name]
            ds = fields.create_dataset(
                name,
                shape=(0, *shape),
                maxshape=(None, *shape),
                chunks=(1, *shape),
                dtype=dtype,
                compression="gzip" if compression else None,
                compression_opts=compression or None,
                shuffle=bool(compression),
            )
            ds.attrs.update(units=info.units, description=info.description)
        for name, dtype, units in (("time", "f8", time_units), ("step", "i8", "1")):
            ds = f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1024,))
            ds.attrs["units"] = units
        # HDF5 dimension scales: netCDF-aware readers see each field on (time, x, y[, z])
        f["time"].make_scale("time")
        for axis in range(simulation.grid.ndim):
            grid[AXES[axis]].make_scale(AXES[axis])
        for name in field_dtypes:
            for k, scale in enumerate([f["time"], *(grid[AXES[a]] for a in range(simulation.grid.ndim))]):
                fields[name].dims[k].attach_scale(scale)
        scalars = f.create_group("scalars")
        for name, dtype, units in (("time", "f8", time_units), ("step", "i8", "1")):
            scalars.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1024,)).attrs["units"] = units
        for name, info in simulation.scalar_info.items():
            ds = scalars.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
            ds.attrs.update(units=info.units, description=info.description)
        self.time_scale = simulation.scales.get("time", (1.0, "1"))[0]
        f.flush()

    @classmethod
    def reopen(cls, path, simulation, clock) -> "RunWriter":
        """Open an interrupted run to append to it, dropping records made after the checkpoint ``clock``."""
        self = cls.__new__(cls)
        self.path, self.simulation = Path(path), simulation
        self.time_scale = simulation.scales.get("time", (1.0, "1"))[0]
        self.file = f = h5py.File(self.path, "r+", locking=False)
        limit = clock["step"]
        keep_frames = int(np.searchsorted(f["step"][()], limit, side="right"))
        for ds in [f["time"], f["step"], *f["fields"].values()]:
            ds.resize(keep_frames, axis=0)
        keep_records = int(np.searchsorted(f["scalars/step"][()], limit, side="right"))
        for ds in f["scalars"].values():
            ds.resize(keep_records, axis=0)
        f.attrs.update(status="running", finished=False, resumed=f.attrs.get("resumed", 0) + 1)
        f.flush()
        return self

    def write_scalars(self, clock, scalars: dict):
        self.write_scalar_records([(clock, scalars)])

    def write_scalar_records(self, records: list):
        """Append ``(clock, scalars)`` records (one resize per dataset, one flush)."""
        if not records:
            return
        group = self.file["scalars"]
        # /scalars/time last: a reader that takes its length first never counts a half-written record
        columns = {name: [float(s[name]) for _, s in records] for name in records[0][1]}
        columns.update(step=[c["step"] for c, _ in records], time=[c["t"] * self.time_scale for c, _ in records])
        for name, values in columns.items():
            dataset = group[name]
            dataset.resize(dataset.shape[0] + len(values), axis=0)
            dataset[-len(values):] = values
        self.file.flush()

    def last_scalar_time(self) -> float:
        """The (nondimensional) time of the newest scalar record; nan if there is none."""
        times = self.file["scalars/time"]
        return float(times[-1]) / self.time_scale if times.shape[0] else float("nan")

    def write_frame(self, clock, fields: dict):
        for name, ds in self.file["fields"].items():
            _append(ds, np.asarray(fields[name]))
        _append(self.file["step"], clock["step"])
        _append(self.file["time"], clock["t"] * self.time_scale)  # last: /time counts the complete frames
        self.file.flush()

    def write_checkpoint(self, carry: dict, clock):
        """Write ``carry`` (the model's state and scheme history) into the older of two slots
        ``/checkpoints/slot_0|1``, with a SHA-256 of its arrays, then point ``/checkpoint`` at it.

        A kill while a slot is written leaves it marked incomplete and the other slot intact; a
        corrupted slot fails its checksum; :func:`read_checkpoint` takes the newest valid one.
        """
        slots = self.file.require_group("checkpoints")
        current = self.file.get("checkpoint", getlink=True)
        newest = current.path.rsplit("/", 1)[-1] if isinstance(current, h5py.SoftLink) else "slot_1"
        group = slots.require_group("slot_0" if newest == "slot_1" else "slot_1")
        group.attrs["complete"] = False
        self.file.flush()
        _write_tree(group, carry)
        group.attrs.update(t=clock["t"], step=clock["step"], dt=clock["dt"], rejected=clock.get("rejected", 0),
                           checksum=tree_checksum(carry), complete=True)
        self.file.flush()
        if "checkpoint" in self.file:
            del self.file["checkpoint"]
        self.file["checkpoint"] = h5py.SoftLink(group.name)
        self.file.flush()

    def close(self, status: str):
        self.file.attrs.update(ended=_now(), finished=status == "finished", status=status)
        self.file.close()


def _write_tree(group, tree: dict):
    """Arrays of a nested dict as datasets, sub-dicts as sub-groups (rewritten in place when they fit)."""
    for name, value in tree.items():
        if isinstance(value, dict):
            if name in group and not isinstance(group[name], h5py.Group):
                del group[name]
            _write_tree(group.require_group(name), value)
            continue
        value = np.asarray(value)
        existing = group.get(name)
        if isinstance(existing, h5py.Dataset) and existing.shape == value.shape and existing.dtype == value.dtype:
            existing[...] = value
        else:
            if name in group:
                del group[name]
            group.create_dataset(name, data=value)


def _read_tree(group) -> dict:
    return {name: _read_tree(item) if isinstance(item, h5py.Group) else item[()] for name, item in group.items()}


class CheckpointError(RuntimeError):
    """No complete, valid checkpoint to resume from."""


def tree_checksum(tree: dict) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a nested dict of arrays (sorted by name)."""
    digest = hashlib.sha256()

    def add(prefix, node):
        for name in sorted(node):
            value = node[name]
            if isinstance(value, dict):
                add(f"{prefix}{name}/", value)
            else:
                value = np.ascontiguousarray(value)
                digest.update(f"{prefix}{name}:{value.shape}:{value.dtype.str}".encode())
                digest.update(value.tobytes())

    add("", tree)
    return digest.hexdigest()


def read_checkpoint(path):
    """``(carry, clock)`` of the newest complete checkpoint slot whose checksum holds.

    Raises :class:`CheckpointError` (one line: what is wrong with which file) when the file cannot
    be read as a run or holds no valid checkpoint.
    """
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable run file ({error})") from None
    with f:
        slots = f.get("checkpoints")
        if not isinstance(slots, h5py.Group):
            raise CheckpointError(f"{path} holds no checkpoint to resume from")
        problems, found = [], []
        for name, group in slots.items():
            if not group.attrs.get("complete", False):
                problems.append(f"{name} incomplete (the run stopped while writing it)")
                continue
            try:
                carry = _read_tree(group)
            except (OSError, KeyError, ValueError) as error:
                problems.append(f"{name} unreadable ({error})")
                continue
            if tree_checksum(carry) != group.attrs.get("checksum"):
                problems.append(f"{name} fails its checksum (corrupted)")
                continue
            found.append((int(group.attrs["step"]), carry, group.attrs))
        if not found:
            raise CheckpointError(f"{path}: no valid checkpoint: {'; '.join(problems) or 'none written'}")
        step, carry, attrs = max(found, key=lambda item: item[0])
        clock = {"t": float(attrs["t"]), "step": int(attrs["step"]), "dt": float(attrs["dt"]),
                 "rejected": int(attrs.get("rejected", 0))}
    return carry, clock


def open_run_file(path, attempts: int = 50, wait: float = 0.1) -> h5py.File:
    """``run.h5`` opened for reading, also while a run writes it: a reader that opens the file in the
    middle of a flush sees it truncated; it tries again (up to ``attempts`` times, ``wait`` s apart).
    A file that stays unreadable raises the last error."""
    import time

    for attempt in range(attempts):
        try:
            return h5py.File(path, "r", locking=False)
        except OSError:
            if attempt == attempts - 1 or not Path(path).is_file():
                raise
            time.sleep(wait)


def read_scalars(f) -> dict:
    """Every ``/scalars`` series of an open run, cut to the records complete when ``/scalars/time`` was
    read (it is written last), so a file being written reads consistently."""
    count = f["scalars/time"].shape[0]
    return {name: ds[:count] for name, ds in f["scalars"].items()}


def read_run(path) -> dict:
    """Plain arrays of a run: ``time``, ``step``, ``fields``, ``scalars``, ``grid`` and ``attrs``."""
    with open_run_file(path) as f:
        frames = f["time"].shape[0]  # written last: the number of complete frames
        return {
            "time": f["time"][:frames],
            "step": f["step"][:frames],
            "fields": {name: ds[:frames] for name, ds in f["fields"].items()},
            "scalars": read_scalars(f),
            "grid": {name: ds[()] for name, ds in f["grid"].items()},
            "attrs": dict(f.attrs),
        }
