import platform
from importlib.metadata import version

import qwenvl_edge
from qwenvl_edge import _core


def test_version_matches_the_distribution():
    assert _core.__version__ == qwenvl_edge.__version__ == version("qwenvl-edge")


def test_format_version_is_shared_with_python():
    assert isinstance(_core.FORMAT_VERSION, int) and _core.FORMAT_VERSION >= 1
    assert qwenvl_edge.FORMAT_VERSION == _core.FORMAT_VERSION


def test_cpu_info_describes_this_machine():
    info = qwenvl_edge.cpu_info()
    machine = platform.machine().lower()
    expected_arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, "unknown")
    assert info["arch"] == expected_arch
    assert 1 <= info["physical_cores"] <= info["logical_cpus"]
    f = info["features"]
    assert all(isinstance(v, bool) for v in f.values())
    if info["arch"] == "x86_64":
        assert f["sse42"]  # every x86-64 CPU this century
        assert not (f["neon"] or f["dotprod"] or f["i8mm"])
        # Each level implies the one below; the OS-support gating keeps this true.
        assert not f["avx2"] or f["avx"]
        assert not f["avx512f"] or f["avx2"]
        assert not f["avx512_vnni"] or f["avx512f"]
        if platform.system() == "Linux":
            with open("/proc/cpuinfo") as cpuinfo_file:
                cpuinfo = cpuinfo_file.read().split()
            assert f["avx2"] == ("avx2" in cpuinfo)
            assert f["avx512_vnni"] == ("avx512_vnni" in cpuinfo)
    if info["arch"] == "arm64":
        assert f["neon"] and not f["avx2"]
