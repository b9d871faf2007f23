"""The anchors of the weighted fusion's quality benchmark: SimpleITK's multi-label STAPLE
(Warfield 2004, Rohlfing 2004) and its label voting, on the same worker masks as gtseg.

    python3 tests/staple_anchor.py DIR

DIR holds one folder per batch (any depth), each with `batch.json`:
    {"images": [{"width": W, "height": H, "workers": ["id", ...]}, ...]}
and `<image>-<k>.bin`, worker k's class map of that image (one byte a pixel, row by row).
For each batch this writes, per image:
- `<image>-staple.bin`: MultiLabelSTAPLE over that image's workers alone;
- `<image>-batch.bin`: MultiLabelSTAPLE over the batch tiled into one image (the evidence a
  batch-wide model sees), when every image has the same workers and size;
- `<image>-vote.bin`: LabelVotingImageFilter.
Pixels STAPLE or the vote leaves undecided (255) get the plurality's class, lowest class on
a tie, so that every method answers every pixel.
"""

import json
import pathlib
import sys

import numpy as np
import SimpleITK as sitk

UNDECIDED = 255


def plurality(stack):
    counts = np.stack([(stack == c).sum(axis=0) for c in range(int(stack.max()) + 1)])
    return counts.argmax(axis=0).astype(np.uint8)


def decided(result, stack):
    result = result.copy()
    holes = result == UNDECIDED
    result[holes] = plurality(stack)[holes]
    return result


def staple(stack):
    images = [sitk.GetImageFromArray(m) for m in stack]
    out = sitk.MultiLabelSTAPLE(images, UNDECIDED)
    return decided(sitk.GetArrayFromImage(out).astype(np.uint8), stack)


def vote(stack):
    images = [sitk.GetImageFromArray(m) for m in stack]
    out = sitk.LabelVoting(images, UNDECIDED)
    return decided(sitk.GetArrayFromImage(out).astype(np.uint8), stack)


def run(folder):
    batch = json.loads((folder / "batch.json").read_text())
    stacks = []
    for i, image in enumerate(batch["images"]):
        shape = (image["height"], image["width"])
        stack = np.stack([
            np.fromfile(folder / f"{i}-{k}.bin", dtype=np.uint8).reshape(shape)
            for k in range(len(image["workers"]))
        ])
        stacks.append((image, stack))
        staple(stack).tofile(folder / f"{i}-staple.bin")
        vote(stack).tofile(folder / f"{i}-vote.bin")
    same = all(
        sorted(im["workers"]) == sorted(stacks[0][0]["workers"])
        and (im["width"], im["height"]) == (stacks[0][0]["width"], stacks[0][0]["height"])
        for im, _ in stacks
    )
    if not same:
        return
    # Every worker's masks one above the other, in one order of workers.
    order = sorted(stacks[0][0]["workers"])
    tiled = np.stack([
        np.concatenate([s[im["workers"].index(w)] for im, s in stacks], axis=0) for w in order
    ])
    result = staple(tiled)
    height = stacks[0][0]["height"]
    for i in range(len(stacks)):
        result[i * height:(i + 1) * height].tofile(folder / f"{i}-batch.bin")


if __name__ == "__main__":
    for batch in sorted(pathlib.Path(sys.argv[1]).rglob("batch.json")):
        run(batch.parent)
