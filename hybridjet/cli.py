"""The ``hybridjet`` command: subcommands are registered by each area's own ``cli`` module.

Each area module (``hybridjet.data.cli``, ``hybridjet.llm.cli`` ...) exposes ``register(subparsers)`` and keeps
heavy imports inside its handlers, so ``hybridjet --help`` stays fast.  The Lightning-driven commands
(``fit``/``validate``/``test``/``predict`` and ``sft ...``) are handed their raw arguments so that LightningCLI
behaves as documented (``-c config.yaml``, ``--print_config``, dotted overrides).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from hybridjet.errors import HybridjetError

AREA_MODULES = (
    "hybridjet.data.cli",
    "hybridjet.llm.cli",
    "hybridjet.eval.cli",
    "hybridjet.text.cli",
    "hybridjet.demo",
    "hybridjet.anomaly.cli",
    "hybridjet.study.cli",
    "hybridjet.deploy.cli",
)

# command -> "module:function" taking the remaining argv (LightningCLI-style commands)
PASSTHROUGH: dict[str, tuple[str, str]] = {
    "fit": ("hybridjet.train.cli", "Train a classifier run (hybrid, text baseline, no-LLM ablation, trees)"),
    "validate": ("hybridjet.train.cli", "Validate a classifier run"),
    "test": ("hybridjet.train.cli", "Test a classifier run"),
    "predict": ("hybridjet.train.cli", "Score events with a classifier run, writing scores.h5"),
    "sft": ("hybridjet.text.lightning_cli", "Text fine-tuning: 'sft fit|validate -c configs/sft_qa.yaml', 'sft eval'"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="hybridjet",
        description="Collider events through 4-bit LoRA LLMs: generate, cluster, train, compare.",
    )
    from hybridjet import __version__

    parser.add_argument("--version", action="version", version=f"hybridjet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in PASSTHROUGH.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    for module_name in AREA_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


#: optional dependencies and the extra that installs each (``pip install 'hybridjet[EXTRA]'``)
EXTRAS = {"pythia8mc": "generate", "fastjet": "cluster", "awkward": "cluster", "hdf5plugin": "cluster",
          "sklearn": "trees", "matplotlib": "plots", "rouge_score": "text", "pyarrow": "text", "datasets": "text",
          "dask": "dask", "distributed": "dask", "onnx": "onnx", "onnxruntime": "onnx", "onnxscript": "onnx",
          "uproot": "root", "mplhep": "plots", "hist": "plots"}


def _missing_extra(exc: BaseException) -> str | None:
    """The one-line advice for a command that needs an optional dependency which is not installed."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if isinstance(exc, ModuleNotFoundError) and name in EXTRAS:
        return f"this command needs {name}, which is not installed: pip install 'hybridjet[{EXTRAS[name]}]'"
    return None


def _user_error(exc: BaseException) -> HybridjetError | None:
    """The :class:`HybridjetError` behind ``exc``, itself or in its chain (LightningCLI's parser wraps the errors
    raised while it instantiates a model or data module in its own ``ValueError``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, HybridjetError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _run(func: Callable[[], int | None]) -> int:
    try:
        code = func()
    except Exception as exc:  # noqa: BLE001 - re-raised unless a user error is behind it
        user = _user_error(exc) or _missing_extra(exc)
        if user is None:
            raise
        print(f"hybridjet: error: {user}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hybridjet: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):  # Lightning's trainer turns Ctrl-C into sys.exit(1)
            print("hybridjet: interrupted", file=sys.stderr)
            return 130
        raise
    return int(code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hybridjet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if argv and argv[0] in PASSTHROUGH:
        module = importlib.import_module(PASSTHROUGH[argv[0]][0])
        return _run(lambda: module.main(argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    return _run(lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
