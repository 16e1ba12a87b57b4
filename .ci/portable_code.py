"""Check that the native core runs on any x86-64 CPU: AVX instructions only in the per-ISA kernels
(namespaces qwenvl_edge::avx2 / ::avx512 / ::avx512vnni, chosen at run time from cpuid), and no per-ISA
object file offering the linker an inline function that others use. Otherwise a baseline file built
with wider flags, or an inline function of a shared header (a std:: container, say) emitted by a
per-ISA file and picked by the linker for everyone, would crash an older CPU with SIGILL.

Reads the object files of a build (the wheel's .so is stripped of the local symbols needed here).

    python .ci/portable_code.py BUILD_DIR
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ISA = re.compile(r"qwenvl_edge::(avx2|avx512|avx512vnni)::")
FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")
VEX = re.compile(r"^\s*[0-9a-f]+:\s+(v[a-z0-9]+)\b")  # VEX/EVEX-encoded mnemonics all start with v


def avx_functions(obj: pathlib.Path) -> set[str]:
    listing = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", str(obj)], capture_output=True,
                             text=True, check=True).stdout
    found, function = set(), ""
    for line in listing.splitlines():
        if m := FUNCTION.match(line):
            function = m.group(1)
        elif (m := VEX.match(line)) and m.group(1) not in ("verr", "verw"):
            found.add(function)
    return found


def weak_definitions(obj: pathlib.Path) -> set[str]:
    """Inline and template functions this object defines: the linker keeps one copy of each, anyone's."""
    listing = subprocess.run(["nm", "-C", "--defined-only", str(obj)], capture_output=True, text=True,
                             check=True).stdout
    return {line.split(" ", 2)[2] for line in listing.splitlines() if line.split(" ", 2)[1:2] in (["W"], ["V"], ["u"])}


def problems(obj: pathlib.Path) -> list[str]:
    avx = avx_functions(obj)
    found = [f"AVX code outside the per-ISA kernels: {name}" for name in sorted(avx) if not ISA.search(name)]
    if avx:
        found += [f"an inline definition the linker may pick for everyone: {name}"
                  for name in sorted(weak_definitions(obj)) if not ISA.search(name)]
    return found


def main() -> None:
    objects = sorted(pathlib.Path(sys.argv[1]).rglob("*.o"))
    if not objects:
        sys.exit(f"{sys.argv[1]}: no object files (build first)")
    bad = 0
    for obj in objects:
        for problem in problems(obj):
            print(f"{obj.name}: {problem}")
            bad += 1
    if bad:
        sys.exit(f"{bad} portability problems in {len(objects)} object files")
    print(f"{len(objects)} object files: AVX code only in the per-ISA kernels, no shared inline code from them")


if __name__ == "__main__":
    main()
