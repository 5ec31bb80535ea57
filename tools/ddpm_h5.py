"""The HDF5 layout ddpm's own writers use (src/core/h5.h), for the Python tools: the
1.10 file format, whose metadata HDF5 checksums, with every group's links and
attributes kept in its object header ("compact"), never in the unchecksummed dense
storage that ddpm refuses to read (docs/formats.md)."""
import ctypes
import os

import h5py

MAX_COMPACT = 65535  # HDF5's limit for compact links and attributes


def _hdf5():
    """The HDF5 library h5py runs on (h5py does not expose H5Pset_link_phase_change)."""
    for name in ("libhdf5_serial.so.103", "libhdf5.so.103", "libhdf5_serial.so", "libhdf5.so"):
        try:
            lib = ctypes.CDLL(name)
            lib.H5Pset_link_phase_change.argtypes = [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint]
            return lib
        except (OSError, AttributeError):
            continue
    raise OSError("cannot find the HDF5 library h5py uses (libhdf5_serial.so.103)")


def _compact(plist, links=True):
    if links and _hdf5().H5Pset_link_phase_change(plist.id, MAX_COMPACT, MAX_COMPACT - 1) < 0:
        raise OSError("H5Pset_link_phase_change failed")
    plist.set_attr_phase_change(MAX_COMPACT, MAX_COMPACT - 1)
    return plist


def create_file(path):
    """A new (truncated) file in ddpm's layout, as an h5py.File."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
    fcpl = _compact(h5py.h5p.create(h5py.h5p.FILE_CREATE))
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def create_group(parent, name):
    """parent[name], a new group in ddpm's layout."""
    h5py.h5g.create(parent.id, name.encode(), gcpl=_compact(h5py.h5p.create(h5py.h5p.GROUP_CREATE)))
    return parent[name]


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp, path):
    """The commit protocol: tmp's data reaches the disk, then path names it (rename), then
    the directory entry reaches the disk."""
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(os.path.dirname(os.path.abspath(path)))
