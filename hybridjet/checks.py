"""Range checks of settings, with the one-line errors every config shares: ``<setting>: expected ..., got ...``.

A setting that cannot be meant (a negative learning rate, zero epochs, a dropout of 2, a fraction above 1) is
refused before any file is read or model loaded, never trained into a finished-looking run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hybridjet.errors import HybridjetError


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def integer(name: str, value: Any, low: int = 1, high: int | None = None, optional: bool = False) -> None:
    """``value`` an integer in ``[low, high]`` (``None`` allowed when ``optional``)."""
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high:,}]"
        raise HybridjetError(f"{name}: expected an integer {span}{' or null' if optional else ''}, got {value!r}")


def positive(name: str, value: Any, optional: bool = False) -> None:
    """``value`` a finite number > 0."""
    if optional and value is None:
        return
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise HybridjetError(f"{name}: expected a finite number > 0{' or null' if optional else ''}, got {value!r}")


def non_negative(name: str, value: Any) -> None:
    """``value`` a finite number >= 0."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise HybridjetError(f"{name}: expected a finite number >= 0, got {value!r}")


def fraction(name: str, value: Any, include_one: bool = True) -> None:
    """``value`` in ``[0, 1]`` (``[0, 1)`` without ``include_one``: a dropout of 1 drops everything)."""
    top_ok = include_one and value == 1
    if not _is_number(value) or not math.isfinite(value) or value < 0 or (value >= 1 and not top_ok):
        span = "[0, 1]" if include_one else "[0, 1)"
        raise HybridjetError(f"{name}: expected a number in {span}, got {value!r}")


def fractions_summing_to_one(name: str, values: Any, count: int, labels: str) -> tuple[float, ...]:
    """``count`` non-negative fractions (``labels`` names them) that sum to 1 (within 1e-6): never renormalised
    silently."""
    values = tuple(values) if isinstance(values, list | tuple) else (values,)
    if len(values) != count or not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in values):
        raise HybridjetError(f"{name}: expected {count} non-negative fractions ({labels}), got {list(values)}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise HybridjetError(f"{name}: the fractions ({labels}) must sum to 1; {list(values)} sum to "
                             f"{sum(values):.6g}")
    return tuple(float(v) for v in values)


def training_budget(trainer: Any, where: str = "trainer") -> None:
    """Lightning's ``max_epochs`` / ``max_steps`` / ``min_epochs`` (a mapping of trainer settings): a budget of no
    step would save an untrained model as a finished run; -1 (no limit) and ``None`` (Lightning's default) pass."""
    get = trainer.get if hasattr(trainer, "get") else lambda key, default=None: getattr(trainer, key, default)
    for key in ("max_epochs", "max_steps", "min_epochs", "min_steps"):
        value = get(key, None)
        if value is None or value == -1 and key.startswith("max"):
            continue
        integer(f"{where}.{key}", value, 1 if key.startswith("max") else 0)
    for key in ("val_check_interval", "check_val_every_n_epoch", "log_every_n_steps", "accumulate_grad_batches"):
        value = get(key, None)
        if value is not None and (not _is_number(value) or value <= 0):
            raise HybridjetError(f"{where}.{key}: expected a number > 0, got {value!r}")


def config_paths(argv: list[str]) -> list[str]:
    """The files ``-c FILE`` / ``--config FILE`` / ``--config=FILE`` of a command line, in order."""
    paths = []
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths


def config_files(argv: list[str]) -> list[dict[str, Any]]:
    """Each config file of ``argv`` read and checked to be a YAML mapping: one line naming the file when it is
    missing, unreadable, not YAML or empty (before the command's parser, whose messages name no file)."""
    import yaml

    out = []
    for path in config_paths(argv):
        try:
            with open(path, encoding="utf-8") as fh:
                config = yaml.safe_load(fh)
        except FileNotFoundError:
            raise HybridjetError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise HybridjetError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise HybridjetError(f"{path}: not valid YAML{where} ({problem})") from None
        if not isinstance(config, dict) or not config:
            raise HybridjetError(f"{path}: expected a YAML mapping of settings (as in configs/), found "
                                 f"{'an empty file' if config is None else type(config).__name__}")
        out.append(config)
    return out


def accelerator(name: Any) -> None:
    """Refuse a Lightning ``accelerator`` this machine does not have, before any model loads."""
    if name in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise HybridjetError(f"trainer.accelerator: {name} asked for, but this machine has no CUDA GPU; expected "
                                 "cpu or auto")


def top_sections(raw: Any, top: tuple[str, ...]) -> dict[str, Any]:
    """A config's top level: a mapping of known sections only."""
    if not isinstance(raw, dict):
        raise HybridjetError(f"expected a mapping with the sections {', '.join(top)}, got {type(raw).__name__}")
    return _known_keys(raw, top, lambda key: f"{key}: unknown section; expected one of {', '.join(top)}")


def sections(raw: Any, top: tuple[str, ...], known: dict[str, tuple[str, ...]]) -> dict[str, dict[str, Any]]:
    """A config's top level checked (:func:`top_sections`) and each of its ``known`` sections read (:func:`section`;
    an absent one is empty)."""
    top_sections(raw, top)
    return {name: section(raw.get(name), name, allowed) for name, allowed in known.items()}


def section(raw: Any, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """One section of a config: a mapping (absent: empty) of known settings only."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HybridjetError(f"{name}: expected a mapping, got {raw!r}")
    return _known_keys(raw, allowed, lambda key: f"{name}.{key}: unknown setting; expected one of {', '.join(allowed)}")


def _known_keys(raw: dict[str, Any], allowed: tuple[str, ...], unknown: Callable[[str], str]) -> dict[str, Any]:
    """``raw`` when every key is ``allowed``; else one line, ``unknown(key)`` of the first other key."""
    extra = sorted(set(raw) - set(allowed))
    if extra:
        raise HybridjetError(unknown(extra[0]))
    return raw


def load_yaml_config(path: Any, parse: Any) -> Any:
    """``parse`` of a YAML config file; every error names the file."""
    from pathlib import Path

    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise HybridjetError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise HybridjetError(f"{path}: not a readable YAML file ({str(err).splitlines()[0]})") from None
    try:
        return parse(raw)
    except HybridjetError as err:
        raise HybridjetError(f"{path}: {err}") from None
