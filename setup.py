"""Compiles the sans-I/O modules with mypyc where it can; pure Python otherwise.

What is compiled is listed in src/memcachepy/native/modules.py. ``MEMCACHEPY_PURE=1`` skips
compiling (and removes compiled modules an earlier in-place build left in the tree). Without
mypy, or when mypyc or the C compiler fails, the build warns and installs the pure package:
every compiled module keeps its .py twin, which is what runs then.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "src" / "memcachepy"
# The mypyc runtime and every compiled module live in one extension, inside the package.
GROUP = "memcachepy.native.lib"


def _load_compiled() -> ModuleType:
    # By path: importing the memcachepy package would start the import switch it holds.
    spec = importlib.util.spec_from_file_location(
        "_memcachepy_native_modules", PACKAGE / "native" / "modules.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compiled = _load_compiled()


def _warn(message: str) -> None:
    print(f"memcachepy build: {message}; installing pure Python", file=sys.stderr)


def _remove_inplace_outputs() -> None:
    package = PACKAGE
    (package / compiled.HASHES_FILE).unlink(missing_ok=True)
    for path in (package / "native").glob("lib__mypyc.*"):
        path.unlink()
    for source in compiled.sources(package):
        for path in source.parent.glob(source.stem + ".*"):
            if path.suffix != ".py":
                path.unlink()


def ext_modules() -> list[Extension]:
    if compiled.pure_requested():
        print("memcachepy build: MEMCACHEPY_PURE is set; pure Python", file=sys.stderr)
        _remove_inplace_outputs()
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypy (mypyc) is not installed")
        return []
    paths = [path.relative_to(ROOT).as_posix() for path in compiled.sources(PACKAGE)]
    try:
        # multi_file: one C file per module instead of one 11 MB file, so that
        # BuildExt can run a compiler per core (pip install stays well under 2 minutes).
        extensions: list[Extension] = mypycify(
            paths, opt_level="3", group_name=GROUP, multi_file=True
        )
    except (Exception, SystemExit) as error:  # mypyc exits on a type error
        _warn(f"mypyc failed ({error!r})")
        return []
    # With multi_file, mypyc (2.4) writes the group's header under build/memcachepy/native/
    # but the per-module C files beside build/, including it by bare name.
    header_dir = os.path.join("build", *GROUP.split(".")[:-1])
    for extension in extensions:
        extension.optional = True  # no C compiler: setuptools warns and goes on
        extension.include_dirs.append(header_dir)
    return extensions


class BuildExt(build_ext):
    """Records what was compiled, or leaves a tree that imports pure if anything failed."""

    def build_extensions(self) -> None:
        # distutils compiles an extension's C files one after the other: spread them
        # over the cores (the compiler runs as a subprocess, so threads suffice).
        compile_files = self.compiler.compile

        def compile_parallel(sources: list[str], *args: object, **kwargs: object) -> list[str]:
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                done = pool.map(lambda source: compile_files([source], *args, **kwargs), sources)
                return [obj for objects in done for obj in objects]

        self.compiler.compile = compile_parallel  # type: ignore[method-assign]
        super().build_extensions()

    def run(self) -> None:
        super().run()
        if not self.extensions:
            return  # pure: nothing compiled, nothing to record
        built = [Path(self.build_lib, self.get_ext_filename(e.name)) for e in self.extensions]
        package = PACKAGE
        if not all(path.exists() for path in built):
            _warn("a compiled module did not build")
            if self.inplace:
                _remove_inplace_outputs()
            for path in built:
                path.unlink(missing_ok=True)
            return
        hashes = json.dumps(compiled.source_hashes(compiled.sources(package), package), indent=1)
        targets = [Path(self.build_lib, "memcachepy", compiled.HASHES_FILE)]
        if self.inplace:
            targets.append(package / compiled.HASHES_FILE)
        for target in targets:
            target.write_text(hashes + "\n")


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildExt})
