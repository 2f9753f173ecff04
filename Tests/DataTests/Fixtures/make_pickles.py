#!/usr/bin/env python3
"""Writes the Dassl few-shot pickle fixtures read by DasslPickleTests / CoOpTests.

Plain CPython (tested with 3.11.7, stdlib pickle only; no torch, no Dassl). A tiny fake package defines
`dassl.data.datasets.base_dataset.Datum` shaped like Dassl's (attributes _impath, _label, _domain, _classname
behind properties), so the pickles are byte-for-byte what Dassl's
`pickle.dump({"train": [...], "val": [...]}, f, protocol=...)` writes for these items.

Run from anywhere: python3 Tests/DataTests/Fixtures/make_pickles.py
Outputs (beside this script):
  fewshot_p2.pkl, fewshot_p4.pkl, fewshot_p5.pkl  3 classes, 2 train + 1 val per class, paths of another machine
  fewshot_expected.json                           the same items as [impath, label, domain, classname]
  many_p2.pkl, many_expected.json                 400 items: memo indices > 255 (LONG_BINPUT / LONG_BINGET)
  evil_reduce_p2.pkl    an object whose __reduce__ is os.system (GLOBAL posix.system + REDUCE)
  evil_raw_os.pkl       hand-written GLOBAL os.system + REDUCE
  evil_eval_p4.pkl      STACK_GLOBAL builtins.eval + REDUCE
  unknown_class_p4.pkl  an instance of dassl.data.datasets.base_dataset.NotDatum
"""
import json
import os
import pickle
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

DATUM_SOURCE = '''
class Datum:
    """Shaped like dassl.data.datasets.base_dataset.Datum (without its file-existence check)."""
    def __init__(self, impath="", label=0, domain=0, classname=""):
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self):
        return self._impath

    @property
    def label(self):
        return self._label

    @property
    def domain(self):
        return self._domain

    @property
    def classname(self):
        return self._classname


class NotDatum:
    def __init__(self):
        self.x = 1
'''


def make_fake_dassl():
    root = tempfile.mkdtemp(prefix="fake_dassl_")
    package = os.path.join(root, "dassl", "data", "datasets")
    os.makedirs(package)
    for folder in ["dassl", "dassl/data", "dassl/data/datasets"]:
        open(os.path.join(root, folder, "__init__.py"), "w").close()
    with open(os.path.join(package, "base_dataset.py"), "w") as f:
        f.write(DATUM_SOURCE)
    sys.path.insert(0, root)


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    make_fake_dassl()
    from dassl.data.datasets.base_dataset import Datum, NotDatum

    prefix = "/home/dassl-user/DATA/oxford_pets/images/"
    classes = ["abyssinian", "beagle", "chihuahua"]
    # One shared classname object per class, as Dassl's read_split shares them: exercises BINGET of strings.
    train = [Datum(prefix + f"{c}_{i}.png", label, 0, classes[label])
             for label, c in enumerate(classes) for i in (1, 3)]
    val = [Datum(prefix + f"{c}_4.png", label, 0, classes[label]) for label, c in enumerate(classes)]
    data = {"train": train, "val": val}
    for protocol in (2, 4, 5):
        write(f"fewshot_p{protocol}.pkl", pickle.dumps(data, protocol=protocol))
    as_rows = lambda items: [[d.impath, d.label, d.domain, d.classname] for d in items]
    with open(os.path.join(HERE, "fewshot_expected.json"), "w") as f:
        json.dump({"train": as_rows(train), "val": as_rows(val)}, f, indent=1)

    names = [f"class_{k}" for k in range(40)]
    many = [Datum(f"/data/oxford_pets/images/img_{i:04d}.png", i % 40, i % 3, names[i % 40]) for i in range(400)]
    write("many_p2.pkl", pickle.dumps({"train": many, "val": []}, protocol=2))
    with open(os.path.join(HERE, "many_expected.json"), "w") as f:
        json.dump({"train": as_rows(many), "val": []}, f)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    write("evil_reduce_p2.pkl", pickle.dumps({"train": [Evil()]}, protocol=2))
    write("evil_raw_os.pkl", b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.")

    class EvalCall:
        def __reduce__(self):
            return (eval, ("1+1",))

    write("evil_eval_p4.pkl", pickle.dumps({"train": [EvalCall()]}, protocol=4))
    write("unknown_class_p4.pkl", pickle.dumps({"train": [NotDatum()]}, protocol=4))


if __name__ == "__main__":
    main()
