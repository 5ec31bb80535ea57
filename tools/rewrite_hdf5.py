#!/usr/bin/python3
"""Rewrites a ddpm checkpoint or weights file in the HDF5 layout ddpm reads now.

ddpm refuses HDF5 files whose metadata HDF5 cannot check (docs/formats.md): files in
the pre-1.10 format (superblock version < 2) and groups that keep their links or
attributes in "dense" storage, which older ddpm builds wrote for checkpoints (more than
8 root attributes) and for large parameter groups. This copies every group, dataset and
attribute, bit for bit, into a new file in the 1.10 format with compact groups, written
through a temporary file and renamed, so that a run of an older build can resume:

  /usr/bin/python3 tools/rewrite_hdf5.py runs/cifar10/checkpoints/ckpt-00100000.h5   # in place
  /usr/bin/python3 tools/rewrite_hdf5.py old-weights.h5 new-weights.h5

Shards are not rewritten this way (the manifest records their byte sizes): prepare the
dataset again with ddpm_prepare. Exit status 2 with one line on bad input.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddpm_h5  # noqa: E402

class BadInput(Exception):
    pass


def copy_attrs(src, dst):
    for name in src.attrs:
        # The stored type (fixed-length strings, int64) is kept, not h5py's default one.
        dst.attrs.create(name, src.attrs[name], dtype=src.attrs.get_id(name).dtype)


def copy_group(src, dst):
    import h5py
    copy_attrs(src, dst)
    for name, link in ((n, src.get(n, getlink=True)) for n in src):
        if not isinstance(link, h5py.HardLink):
            raise BadInput(f"{src.file.filename}: '{src.name}/{name}' is a soft or external link; refused")
        obj = src[name]
        if isinstance(obj, h5py.Group):
            copy_group(obj, ddpm_h5.create_group(dst, name))
        else:
            out = dst.create_dataset(name, data=obj[()], dtype=obj.dtype, chunks=obj.chunks)
            copy_attrs(obj, out)


def rewrite(src_path, dst_path):
    import h5py
    if not os.path.isfile(src_path):
        raise BadInput(f"{src_path}: no such file")
    try:
        src = h5py.File(src_path, "r")
    except OSError as e:
        raise BadInput(f"{src_path}: not a readable HDF5 file ({e})") from e
    with src:
        fmt = src.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt not in ("ddpm-checkpoint", "ddpm-weights"):
            raise BadInput(f"{src_path}: not a ddpm checkpoint or weights file (format attribute {fmt!r})")
        tmp = dst_path + ".tmp"
        try:
            with ddpm_h5.create_file(tmp) as dst:
                copy_group(src, dst)
            ddpm_h5.commit(tmp, dst_path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    return fmt


def main(argv):
    if len(argv) not in (2, 3) or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    src, dst = argv[1], argv[2] if len(argv) == 3 else argv[1]
    try:
        fmt = rewrite(src, dst)
    except BadInput as e:
        print(f"rewrite_hdf5: error: {e}", file=sys.stderr)
        return 2
    print(f"{dst}: {fmt} rewritten in the HDF5 1.10 format with compact groups")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
