"""Run a module as on the device's GPU image: packages installed here that the image lacks
(and experiments/gpu_pack.py does not carry as wheels) cannot be imported.

    python tests/gpu_image.py [-m] hemato.run ARGS...

The image's packages as the device tool's KINDS.md listed them (read 2026-11-17), as import
names. Used by tests/test_gpu_pack.py to check that training imports nothing the GPU machine
lacks (wandb, nibabel, pydicom, ... are installed here, not there)."""

import ast
import importlib.abc
import pkgutil
import re
import runpy
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

device = """absl accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated_doc anyio attr attrs botorch build certifi
charset_normalizer chex click cloudpickle cmake colorama contourpy coverage cuda cupy cycler cython diffrax e3nn einops
equinox etils execnet filelock flatbuffers flax fontTools formulaic frozenlist fsspec gpytorch grpc h11 h5py hf_xet httpcore
httpx huggingface_hub humanize hypothesis idna imageio iniconfig interface_meta jax jaxlib jaxtyping jinja2 joblib kiwisolver
lazy_loader lightning lightning_utilities linear_operator lineax llvmlite lxml markdown markdown_it markupsafe matplotlib
mdurl mesonbuild ml_dtypes mpi4py mpmath msgpack multidict multipledispatch mypy_extensions nanobind narwhals networkx ninja
numba numpy numpyro nvidia onnx onnx_ir onnxruntime onnxscript cv2 optax opt_einsum orbax packaging pandas pathspec patsy peft
PIL pip pluggy portalocker prometheus_client propcache google psutil pyarrow pybind11 cpuinfo pygments pyparsing
pyproject_hooks pyre_extensions pytest _pytest dateutil pytorch_lightning yaml regex requests rich sacrebleu safetensors
skimage sklearn scipy seaborn sentencepiece sentence_transformers setuptools pkg_resources _distutils_hack shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchgen functorch torchaudio torchdiffeq
torch_geometric torchmetrics torchvision tqdm transformers treescope triton typer typing_extensions typing_inspect
urllib3 uvloop wadler_lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split()


def carried() -> set[str]:
    """Import names of experiments/gpu_pack.py's DEVICE_WHEELS (read from its source, so that
    importing it here does not import what should be refused later)."""
    tree = ast.parse((Path(__file__).parents[1] / "experiments" / "gpu_pack.py").read_text())
    wheels = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "DEVICE_WHEELS"
    )
    norm = {re.sub(r"[-_.]+", "-", w).lower() for w in wheels}
    return {
        m
        for m, dists in packages_distributions().items()
        if any(re.sub(r"[-_.]+", "-", d).lower() in norm for d in dists)
    }


allowed = {"mpl_toolkits", "hemato", "__main__"} | set(device) | carried() | set(sys.stdlib_module_names)
installed = {m.name for m in pkgutil.iter_modules() if not m.name.startswith("_")}
hidden = installed - allowed  # here but not on the GPU image
blocked = set()


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in hidden:
            blocked.add(top)
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU image)")
        return None


sys.meta_path.insert(0, Block())
args = sys.argv[2:] if sys.argv[1] == "-m" else sys.argv[1:]  # python tests/gpu_image.py [-m] MODULE ARGS
mod = args[0]
sys.argv = args
try:
    sys.path.insert(0, ".")
    runpy.run_module(mod, run_name="__main__", alter_sys=True)
finally:
    print("refused imports:", sorted(blocked), file=sys.stderr)
