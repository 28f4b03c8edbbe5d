"""Compiles the sans-I/O modules with mypyc where it can; pure Python otherwise.

What is compiled is listed in src/memcachepy/native/modules.py. ``MEMCACHEPY_PURE=1`` skips
compiling (and removes compiled modules an earlier in-place build left in the tree). Without
mypy, or when mypyc or the C compiler fails, the build warns and installs the pure package:
every compiled module keeps its .py twin, which is what runs then.

With gcc, the build is profile-guided, as CPython's own ``--enable-optimizations``: it
compiles the modules instrumented, runs the daemon through the load of
``memcachepy.native.training``, and compiles them again with the counts that left, so
that the code of the commonest commands is laid out together and the rest out of its way.
``MEMCACHEPY_PGO=0`` builds without; a failed training warns and does the same.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
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
PGO_VARIABLE = "MEMCACHEPY_PGO"
# single, not atomic, counter updates: the daemon runs its requests in one thread.
PROFILE_GENERATE = ["-fprofile-generate", "-fprofile-update=single"]
# partial-training: code the training never ran stays optimized for speed, not for size.
# mypyc compiles with -Werror, so a profile that misses some code must not fail the build.
PROFILE_USE = [
    "-fprofile-use",
    "-fprofile-partial-training",
    "-Wno-missing-profile",
    "-Wno-error=coverage-mismatch",
]


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
        if sys.platform == "linux":
            # One module's C file calls another's functions, which the shared library
            # exports: bound inside the library, such a call goes straight to the function
            # instead of through the PLT, and gcc may inline within a file.
            extension.extra_compile_args.append("-fno-semantic-interposition")
            extension.extra_link_args.append("-Wl,-Bsymbolic-functions")
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
        if not self._build_trained():
            super().build_extensions()

    def _can_train(self) -> bool:
        if self.inplace or os.environ.get(PGO_VARIABLE, "") == "0" or sys.platform != "linux":
            return False
        try:
            version = subprocess.run(
                [self.compiler.compiler_so[0], "--version"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return False
        # gcc, whose counts the second pass reads as they are (clang's need llvm-profdata).
        return "Free Software Foundation" in version

    def _outputs(self) -> list[Path]:
        return [Path(self.get_ext_fullpath(e.name)) for e in self.extensions]

    def _pass(self, compile_args: list[str], link_args: list[str]) -> bool:
        """Build every extension with extra flags; whether each one came out."""
        for path in self._outputs():
            path.unlink(missing_ok=True)
        saved = [(e.extra_compile_args, e.extra_link_args) for e in self.extensions]
        for extension in self.extensions:
            extension.extra_compile_args = [*extension.extra_compile_args, *compile_args]
            extension.extra_link_args = [*extension.extra_link_args, *link_args]
        try:
            super().build_extensions()  # an optional extension that fails only warns
        finally:
            for extension, (compile_saved, link_saved) in zip(self.extensions, saved, strict=True):
                extension.extra_compile_args = compile_saved
                extension.extra_link_args = link_saved
        return all(path.exists() for path in self._outputs())

    def _train(self) -> bool:
        """Run the instrumented build through the training load; whether it left counts."""
        build_lib = Path(self.build_lib).resolve()
        # A record of an earlier build would make the package import its sources.
        (build_lib / "memcachepy" / compiled.HASHES_FILE).unlink(missing_ok=True)
        path = os.pathsep.join(filter(None, [str(build_lib), os.environ.get("PYTHONPATH")]))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "memcachepy.native.training"],
                cwd=build_lib,
                env={**os.environ, "PYTHONPATH": path},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=300,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0 and any(Path(self.build_temp).rglob("*.gcda"))

    def _build_trained(self) -> bool:
        """The profile-guided build; False, having built nothing, where it cannot run."""
        if not self._can_train():
            return False
        # Every pass compiles every file again; so does the plain build after a failed
        # training, which would otherwise take the instrumented library for up to date.
        self.force = True
        for stale in Path(self.build_temp).rglob("*.gcda"):
            stale.unlink()
        if not self._pass(PROFILE_GENERATE, PROFILE_GENERATE) or not self._train():
            failed = "the profile training"
        elif not self._pass(PROFILE_USE, []):
            failed = "the profiled compile"
        else:
            return True
        print(f"memcachepy build: {failed} failed; compiling without a profile", file=sys.stderr)
        return False

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
