"""Reads a `gtseg export` back with its ecosystem's own reader and dumps what the reader sees.

    python3 tests/export_readers.py voc|coco|hf EXPORT_DIR DUMP_DIR

For every image the reader yields, DUMP_DIR/<id>.bin holds the class map that the reader
rebuilds (one byte a pixel, row by row: the class id, 255 where ignored), and
DUMP_DIR/index.json maps each id to its split, its size and its source image's size as the
reader decoded it. The integration tests compare the maps with the consolidated masks.

- voc: Datumaro's `voc_segmentation` importer (it decodes masks by colour through
  labelmap.txt; its `ignored` label is 255).
- coco: pycocotools' `COCO` and `annToMask`; pixels in no annotation are 0, and the script
  fails if two annotations share a pixel or an `area` or `bbox` is not the mask's.
- hf: Hugging Face `datasets.load_dataset` on the folder (its README.md declares the
  features); `label` must decode as an 8-bit image of mode L.
"""

import json
import os
import sys

import numpy as np


def dump(out, entries):
    os.makedirs(out, exist_ok=True)
    index = {}
    for image_id, split, class_map, source_size in entries:
        assert image_id not in index, f"two images named {image_id}"
        class_map = np.ascontiguousarray(class_map, dtype=np.uint8)
        with open(os.path.join(out, image_id + ".bin"), "wb") as f:
            f.write(class_map.tobytes())
        height, width = class_map.shape
        index[image_id] = {"split": split, "width": width, "height": height,
                           "source": list(source_size)}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, sort_keys=True)


def read_voc(root):
    import datumaro as dm

    dataset = dm.Dataset.import_from(root, "voc_segmentation")
    names = [c.name for c in dataset.categories()[dm.AnnotationType.label].items]
    for item in dataset:
        source = item.media.data
        class_map = np.full(source.shape[:2], 254, dtype=np.uint8)
        for ann in item.annotations:
            if ann.type != dm.AnnotationType.mask:
                continue
            value = 255 if names[ann.label] == "ignored" else ann.label
            class_map[ann.image.astype(bool)] = value
        assert (class_map != 254).all(), f"{item.id}: pixels in no class mask"
        yield item.id, item.subset, class_map, (source.shape[1], source.shape[0])


def read_coco(root):
    from PIL import Image
    from pycocotools.coco import COCO

    for name in sorted(os.listdir(os.path.join(root, "annotations"))):
        split = name.removesuffix(".json")
        coco = COCO(os.path.join(root, "annotations", name))
        cats = coco.loadCats(coco.getCatIds())
        assert [c["id"] for c in cats] == list(range(1, len(cats) + 1)), cats
        for image in coco.loadImgs(coco.getImgIds()):
            class_map = np.zeros((image["height"], image["width"]), dtype=np.uint8)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
                mask = coco.annToMask(ann).astype(bool)
                assert ann["iscrowd"] == 0
                assert ann["area"] == int(mask.sum()), (ann["area"], int(mask.sum()))
                ys, xs = np.nonzero(mask)
                x, y = int(xs.min()), int(ys.min())
                assert ann["bbox"] == [x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1]
                assert not class_map[mask].any(), "two annotations share a pixel"
                class_map[mask] = ann["category_id"]
            with Image.open(os.path.join(root, "images", image["file_name"])) as source:
                size = source.size
            yield os.path.splitext(image["file_name"])[0], split, class_map, size


def read_hf(root):
    import datasets

    loaded = datasets.load_dataset(root)
    for split, rows in loaded.items():
        assert set(rows.features) == {"image", "label"}, rows.features
        assert all(isinstance(f, datasets.Image) for f in rows.features.values())
        paths = rows.cast_column("label", datasets.Image(decode=False))["label"]
        for row, raw in zip(rows, paths):
            label = row["label"]
            assert label.mode == "L", label.mode
            yield os.path.splitext(raw["path"])[0], split, np.array(label), row["image"].size


READERS = {"voc": read_voc, "coco": read_coco, "hf": read_hf}

if __name__ == "__main__":
    fmt, root, out = sys.argv[1:4]
    dump(out, READERS[fmt](root))
