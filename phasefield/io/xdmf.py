"""XDMF sidecar so ParaView (and VisIt) open ``run.h5`` directly as a time series.

``run.xdmf`` is a temporal collection with one uniform grid per frame: a co-rectilinear mesh
(origin and spacing from ``/grid``) and one cell-less node attribute per field, pointing at a
hyperslab ``[frame, :, ...]`` of ``/fields/<name>``. XDMF orders axes slowest first, as the
arrays are stored, so ParaView shows the array's first axis (x) as its last axis (z in 3D, y in 2D).
"""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from phasefield.io.hdf5 import open_run_file


def write_xdmf(run_file, out=None) -> Path:
    run_file = Path(run_file)
    out = Path(out) if out else run_file.with_suffix(".xdmf")
    with open_run_file(run_file) as f:
        axes = [name for name in "xyz" if name in f["grid"]]
        coords = [f["grid"][a][()] for a in axes]
        times = f["time"][()]
        fields = {name: (ds.shape, ds.dtype.itemsize) for name, ds in f["fields"].items()}
    shape = [len(c) for c in coords]
    dims = " ".join(map(str, shape))
    ndim = len(shape)
    origin = " ".join(repr(float(c[0])) for c in coords)
    spacing = " ".join(repr(float(c[1] - c[0])) if len(c) > 1 else "1.0" for c in coords)
    topology = "2DCoRectMesh" if ndim == 2 else "3DCoRectMesh"
    geometry = "ORIGIN_DXDY" if ndim == 2 else "ORIGIN_DXDYDZ"
    lines = [
        '<?xml version="1.0" ?>',
        '<Xdmf Version="3.0">',
        " <Domain>",
        '  <Grid Name="run" GridType="Collection" CollectionType="Temporal">',
    ]
    for frame, t in enumerate(times):
        lines += [
            f'   <Grid Name="frame{frame}" GridType="Uniform">',
            f'    <Time Value="{float(t)!r}"/>',
            f'    <Topology TopologyType="{topology}" Dimensions="{dims}"/>',
            f'    <Geometry GeometryType="{geometry}">',
            f'     <DataItem Dimensions="{ndim}" Format="XML">{origin}</DataItem>',
            f'     <DataItem Dimensions="{ndim}" Format="XML">{spacing}</DataItem>',
            "    </Geometry>",
        ]
        for name, (full_shape, itemsize) in fields.items():
            start = " ".join(["{}".format(frame)] + ["0"] * ndim)
            stride = " ".join(["1"] * (ndim + 1))
            count = " ".join(["1"] + [str(n) for n in shape])
            lines += [
                f'    <Attribute Name={quoteattr(name)} AttributeType="Scalar" Center="Node">',
                f'     <DataItem ItemType="HyperSlab" Dimensions="{dims}" Type="HyperSlab">',
                f'      <DataItem Dimensions="3 {ndim + 1}" Format="XML">{start} {stride} {count}</DataItem>',
                f'      <DataItem Dimensions="{" ".join(map(str, full_shape))}" NumberType="Float" '
                f'Precision="{itemsize}" Format="HDF">{run_file.name}:/fields/{name}</DataItem>',
                "     </DataItem>",
                "    </Attribute>",
            ]
        lines.append("   </Grid>")
    lines += ["  </Grid>", " </Domain>", "</Xdmf>", ""]
    out.write_text("\n".join(lines))
    return out
