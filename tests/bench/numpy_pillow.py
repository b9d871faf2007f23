"""The same consolidation in numpy + Pillow: what a user would write instead.

It reads the same event and payload that `gtseg bench --keep` generates, and does the same
work: decode every worker PNG, map colours to classes through each worker's labelMappings,
vote per pixel with the 3x3 neighbourhood tie-break, compute the confidence, and write an
8-bit palette PNG. It prints the best wall-clock time of --repeat runs as JSON. The masks (and confidence.json)
go to <outputConfig>/consolidated-annotation/numpy-output/, so it doubles as an independent
oracle for the Rust vote (tests/gtseg-tests/integration/oracle.rs).

usage: python3 tests/bench/numpy_pillow.py DIR [--repeat N]
  DIR: one case folder of `gtseg bench --keep --dir D` (e.g. D/12mp-5w)
"""
import argparse
import base64
import io
import json
import os
import time

import numpy as np
from PIL import Image

ABSTAIN = 255


def hex_rgb(h):
    return tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))


def worker_classes(content, labels):
    answer = next(v for v in json.loads(content).values() if isinstance(v, dict) and "labeledImage" in v)
    img = Image.open(io.BytesIO(base64.b64decode(answer["labeledImage"]["pngImageData"]))).convert("RGBA")
    px = np.asarray(img)
    rgb = px[..., :3].astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    out = np.full(packed.shape, ABSTAIN, np.uint8)
    for label, m in answer.get("labelMappings", {}).items():
        r, g, b = hex_rgb(m["color"])
        out[packed == ((r << 16) | (g << 8) | b)] = labels.index(label) + 1
    out[packed == 0xFFFFFF] = 0
    out[px[..., 3] == 0] = 0
    return out


def consolidate(masks, n_classes):
    h, w = masks[0].shape
    counts = np.zeros((n_classes, h, w), np.uint8)
    for m in masks:
        for c in range(n_classes):
            counts[c] += m == c
    best = counts.max(axis=0)
    winner = counts.argmax(axis=0).astype(np.uint8)  # lowest index among equals
    tied = ((counts == best) & (best > 0)).sum(axis=0) > 1
    if tied.any():
        padded = np.pad(counts.astype(np.uint16), ((0, 0), (1, 1), (1, 1)))
        hood = sum(padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))
        hood = np.where(counts == best, hood.astype(np.int32), -1)
        winner = np.where(tied, hood.argmax(axis=0), winner).astype(np.uint8)
    winner[best == 0] = 0
    confidence = 0.0 if len(masks) < 2 else round(float(best.sum()) / (h * w * len(masks)), 5)
    return winner, confidence


def run(case_dir):
    event = json.load(open(os.path.join(case_dir, "event.json")))
    labels = [l if isinstance(l, str) else l["label"] for l in event["labelCategories"]]
    payload = json.load(open(os.path.join(case_dir, event["payload"]["s3Uri"][len("s3://"):])))
    out_prefix = os.path.join(case_dir, event["outputConfig"][len("s3://"):], "consolidated-annotation", "numpy-output")
    os.makedirs(out_prefix, exist_ok=True)
    confidences = {}
    for item in payload:
        masks = [worker_classes(a["annotationData"]["content"], labels) for a in item["annotations"]]
        winner, confidences[item["datasetObjectId"]] = consolidate(masks, len(labels) + 1)
        img = Image.fromarray(winner, mode="P")
        palette = [255, 255, 255]
        for i in range(len(labels)):
            palette += [(37 * i) % 256, (91 * i) % 256, (151 * i) % 256]
        palette += [0, 0, 0] * (256 - len(palette) // 3)  # a full palette keeps 8-bit indices
        img.putpalette(palette)
        img.save(os.path.join(out_prefix, f"{item['datasetObjectId']}.png"))
    with open(os.path.join(out_prefix, "confidence.json"), "w") as f:
        json.dump(confidences, f)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    best = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        run(args.dir)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"numpy_pillow_s": best}))
