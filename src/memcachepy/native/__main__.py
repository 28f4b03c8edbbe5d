"""``python3 -m memcachepy.native``: prints what an import gets, ``compiled`` or ``pure``.

A build that compiled only some of the modules prints ``mixed: ...`` and exits 1.
scripts/test.sh reads it to choose its test passes.
"""

from __future__ import annotations

import importlib
import sys
from importlib.machinery import EXTENSION_SUFFIXES

from memcachepy.native.modules import module_names


def main() -> int:
    names = module_names()
    compiled = [
        name
        for name in names
        if (getattr(importlib.import_module(name), "__file__", None) or "").endswith(
            tuple(EXTENSION_SUFFIXES)
        )
    ]
    if not compiled:
        print("pure")
    elif len(compiled) == len(names):
        print("compiled")
    else:
        print("mixed: compiled " + " ".join(compiled))
        return 1
    return 0


sys.exit(main())
