"""The native onnxruntime custom-op library of ``eventflow.LIF``: build it, find it.

``lif_op/ort/eventflow_ort_ops.cc`` implements the operator with the same float32 operations, in the same order, as
its model-local ONNX function (:mod:`eventflow.export.functions`), so a session that registers the library
(``SessionOptions.register_custom_ops_library``; :class:`eventflow.export.runtime.OnnxStepper` takes
``custom_op_library=``) runs the LIF nodes natively with bit-identical outputs. The library links nothing from
onnxruntime: the API table arrives through ``RegisterCustomOps``, so it loads into the pip wheel.

The pip wheel ships no C/C++ headers. :func:`build` looks for them in ``$EVENTFLOW_ORT_INCLUDE``, then in
``/usr/include/onnxruntime`` (Debian 13+: ``apt-get install libonnxruntime-dev``), then in ``build/lif_op/ort/include``
where ``lif_op/ort/fetch_headers.sh`` puts the headers of Debian's ``libonnxruntime-dev`` (MIT), downloaded with
apt-get at build time (``fetch=True``; nothing is committed). The C API is versioned and backward compatible, so the
1.21 headers of Debian 13 build a library that onnxruntime 1.32 loads.

``python -m eventflow.export.ort_library --build`` builds it (about 30 s the first time: the package index) and
prints its path, cached under ``build/lif_op/ort/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from eventflow import paths

INCLUDE_ENV = "EVENTFLOW_ORT_INCLUDE"
HEADER = "onnxruntime_cxx_api.h"
SYSTEM_INCLUDE = Path("/usr/include/onnxruntime")
LIBRARY_NAME = "libeventflow_ort_ops.so"
# -ffp-contract=off: no fused multiply-adds, which would round differently from onnxruntime's separate Mul and Add.
CXX_FLAGS = ("-std=c++17", "-O3", "-ffp-contract=off", "-fPIC", "-shared", "-fvisibility=hidden")


class OrtLibraryError(RuntimeError):
    """The custom-op library cannot be built here; the message says why and what to do."""


class OrtHeadersUnavailable(OrtLibraryError):
    """No onnxruntime headers were found and none could be fetched."""


def source_dir() -> Path:
    """``lif_op/ort`` of the project (the C++ source and the header fetch script)."""
    return paths.project_root() / "lif_op" / "ort"


def build_dir() -> Path:
    """Where the library and the fetched headers go: ``build/lif_op/ort`` of the project."""
    return paths.project_root() / "build" / "lif_op" / "ort"


def library_path() -> Path:
    """The path of the built library (it may not exist yet)."""
    return build_dir() / LIBRARY_NAME


def find_headers() -> Path | None:
    """The folder holding the onnxruntime C++ API headers, in the order of the module docstring; None if none."""
    candidates = []
    if os.environ.get(INCLUDE_ENV):
        env = Path(os.environ[INCLUDE_ENV])
        if not (env / HEADER).is_file():
            raise OrtHeadersUnavailable(f"${INCLUDE_ENV}={env} holds no {HEADER}")
        candidates.append(env)
    candidates += [SYSTEM_INCLUDE, build_dir() / "include"]
    return next((c for c in candidates if (c / HEADER).is_file()), None)


def fetch_headers() -> Path:
    """Download the headers of Debian's ``libonnxruntime-dev`` into ``build/lif_op/ort/include`` (apt-get, a private
    state folder; see ``lif_op/ort/fetch_headers.sh``)."""
    script = source_dir() / "fetch_headers.sh"
    if not script.is_file():
        raise OrtHeadersUnavailable(f"{script} not found (run from a checkout of the project)")
    if shutil.which("apt-get") is None:
        raise OrtHeadersUnavailable(f"no onnxruntime headers found and no apt-get to fetch them; set ${INCLUDE_ENV} to "
                                    f"a folder holding {HEADER}")
    dest = build_dir() / "include"
    with tempfile.TemporaryDirectory(dir=build_dir().parent if build_dir().parent.is_dir() else None) as tmp:
        staging = Path(tmp) / "include"
        result = subprocess.run(["bash", str(script), str(staging)], capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise OrtHeadersUnavailable(f"fetching the onnxruntime headers failed: {last}; set ${INCLUDE_ENV} to a "
                                        f"folder holding {HEADER}")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    return dest


def build(force: bool = False, fetch: bool = True) -> Path:
    """Compile the library (cached: rebuilt when the source is newer or ``force``); returns its path.

    Raises:
        OrtHeadersUnavailable: no headers found and (with ``fetch``) none could be fetched.
        OrtLibraryError: not Linux, no C++ compiler, or a compile error.
    """
    if not sys.platform.startswith("linux"):
        raise OrtLibraryError(f"the custom-op library is built on Linux only, not {sys.platform}")
    source = source_dir() / "eventflow_ort_ops.cc"
    if not source.is_file():
        raise OrtLibraryError(f"{source} not found (run from a checkout of the project)")
    target = library_path()
    if not force and target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise OrtLibraryError("no C++ compiler found (install g++ or set $CXX)")
    target.parent.mkdir(parents=True, exist_ok=True)
    include = find_headers()
    if include is None:
        if not fetch:
            raise OrtHeadersUnavailable(f"no onnxruntime headers found; set ${INCLUDE_ENV} or build with fetch=True")
        include = fetch_headers()
    # compile beside the target and rename, so concurrent builds (pytest-xdist) never see half a library
    fd, tmp = tempfile.mkstemp(prefix=f".{LIBRARY_NAME}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    result = subprocess.run([compiler, *CXX_FLAGS, f"-I{include}", str(source), "-o", tmp],
                            capture_output=True, text=True)
    if result.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip())
        raise OrtLibraryError(f"compiling {source.name} against {include} failed: {first}")
    os.replace(tmp, target)
    return target


def try_build() -> tuple[Path | None, str]:
    """:func:`build` where it can be done here: ``(library, message)``, or ``(None, why not)`` when the headers,
    the compiler or the platform are missing (for notebooks and benchmarks that show the native op where it
    exists; a compile error of the source still raises)."""
    try:
        path = build()
    except OrtHeadersUnavailable as err:
        return None, f"no native library: {err}"
    except OrtLibraryError as err:
        if "failed:" in str(err):
            raise
        return None, f"no native library: {err}"
    return path, f"native library {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventflow.export.ort_library", description=__doc__.split("\n")[0])
    parser.add_argument("--build", action="store_true", help="build the library (if stale) and print its path")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    if not args.build:
        parser.print_help()
        return 0
    try:
        print(build(force=args.force))
    except OrtLibraryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
