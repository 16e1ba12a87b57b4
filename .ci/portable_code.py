"""Check that a wheel's native module runs on any x86-64 CPU: only the per-ISA kernels (namespaces
qwenvl_edge::avx2, ::avx512, ::avx512vnni, chosen at run time from cpuid) may hold AVX instructions.
An AVX instruction anywhere else (a baseline file built with wider flags, or an inline function of a
shared header emitted by a per-ISA file and picked by the linker for everyone) would crash older CPUs.

    python .ci/portable_code.py WHEEL
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile

ALLOWED = re.compile(r"qwenvl_edge::(avx2|avx512|avx512vnni)::")
FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")
VEX = re.compile(r"^\s*[0-9a-f]+:\s+(v[a-z0-9]+)\b")  # VEX/EVEX-encoded mnemonics all start with v


def offenders(library: str) -> dict[str, str]:
    listing = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", library], capture_output=True,
                             text=True, check=True).stdout
    found: dict[str, str] = {}
    function = ""
    for line in listing.splitlines():
        if m := FUNCTION.match(line):
            function = m.group(1)
        elif (m := VEX.match(line)) and m.group(1) not in ("verr", "verw") and not ALLOWED.search(function):
            found.setdefault(function, m.group(1))
    return found


def main() -> None:
    with zipfile.ZipFile(sys.argv[1]) as wheel, tempfile.TemporaryDirectory() as tmp:
        modules = [n for n in wheel.namelist() if re.search(r"_core\..*\.so$", n)]
        if len(modules) != 1:
            sys.exit(f"expected one native module in the wheel, found {modules}")
        bad = offenders(wheel.extract(modules[0], tmp))
    for function, instruction in sorted(bad.items()):
        print(f"  {instruction:<12} in {function}")
    if bad:
        sys.exit(f"{len(bad)} functions outside the per-ISA kernels use AVX instructions")
    print(f"{modules[0]}: AVX instructions only in the per-ISA kernels")


if __name__ == "__main__":
    main()
