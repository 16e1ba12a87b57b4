"""The runtime never imports torch: only the exporters (the `export` extra) need it."""

import subprocess
import sys

RUNTIME_USE = """
import sys
from PIL import Image
import qwenvl_edge, qwenvl_edge.cli, qwenvl_edge.eval.command, qwenvl_edge.eval.runner, qwenvl_edge.server.app
model = qwenvl_edge.load(sys.argv[1], threads=1)
picture = Image.new("RGB", (64, 48), "red")
model.chat().ask("Hi", images=[picture], max_new_tokens=2)
model.ground(picture, "the red box")
qwenvl_edge.cli.main(["info"])
loaded = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
assert not loaded, loaded
"""


def test_loading_asking_grounding_and_the_cli_never_import_torch(tiny_bundle):
    done = subprocess.run([sys.executable, "-c", RUNTIME_USE, str(tiny_bundle)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
