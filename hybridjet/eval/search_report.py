"""The report of a resonance search: max SIC per (method, label mode, injected S/B) as the median and 68% band over
seeds, the seed ensemble's, the signal region's S/B and S/√B before and after the cut, the ordering of the modes;
a markdown table, strict JSON and the figures (max SIC against S/B, SIC curves), each file written atomically.

A record is one trained (method, mode, S/B, seed): ``method``, ``label_mode``, ``s_over_b`` (injected), ``seed``
(an integer, or ``"ensemble"`` for the mean of the seeds' probabilities), ``counts`` (the data's signal-region
counts, :meth:`hybridjet.data.injection.AnomalySample.counts`) and ``search[split]`` (:func:`max_sic` fields, AUC).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.data.weak import LABEL_MODES
from hybridjet.eval.sic import band, significance
from hybridjet.io_utils import atomic_path, write_json

#: the label modes in the order of their expected max SIC (their records' ranks)
MODE_ORDER = tuple(sorted(LABEL_MODES, key=lambda name: LABEL_MODES[name].rank))


def summarize(records: list[dict[str, Any]], split: str, level: float = 0.68) -> list[dict[str, Any]]:
    """One row per (method, mode, S/B): max SIC over the seeds (median, band), the ensemble's, AUC, S/√B."""
    keys: list[tuple[str, str, float]] = []
    for r in records:
        key = (r["method"], r["label_mode"], float(r["s_over_b"]))
        if key not in keys:
            keys.append(key)
    rows = []
    for method, mode, sb in keys:
        mine = [r for r in records if (r["method"], r["label_mode"], float(r["s_over_b"])) == (method, mode, sb)]
        seeds = [r for r in mine if r["seed"] != "ensemble"]
        ensemble = next((r for r in mine if r["seed"] == "ensemble"), None)
        sic = band([r["search"][split].get("max_sic", math.nan) for r in seeds], level)
        aucs = band([r["search"][split].get("auc", math.nan) for r in seeds], level)
        n_sig = float(np.median([r["counts"]["n_signal_sr"] for r in seeds]))
        n_bkg = float(np.median([r["counts"]["n_background_sr"] for r in seeds]))
        sig = significance(int(round(n_sig)), int(round(n_bkg)), sic["median"])
        rows.append({"method": method, "label_mode": mode, "n_signal_sr": n_sig, "n_background_sr": n_bkg, **sig,
                     "s_over_b": sb, "s_over_b_data": sig["s_over_b"], "max_sic": sic, "auc": aucs,
                     "n_seeds": len(seeds),
                     "max_sic_ensemble": None if ensemble is None else ensemble["search"][split].get("max_sic"),
                     "floor_eff_b": next((r["search"][split].get("floor_eff_b") for r in seeds), None)})
    return rows


def ordering(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, S/B) with two modes or more: the medians in the order supervised, idealized, CWoLa, whether
    they do not increase along it (``holds``, the expected ordering) and whether every step that does increase
    stays within the 68% bands (``within_bands``: the upper edge of the earlier mode reaches the later's lower)."""
    out = []
    pairs = sorted({(r["method"], r["s_over_b"]) for r in rows}, key=lambda p: (p[0], p[1]))
    for method, sb in pairs:
        sics = {r["label_mode"]: r["max_sic"] for r in rows if (r["method"], r["s_over_b"]) == (method, sb)}
        present = [m for m in MODE_ORDER if m in sics]
        if len(present) < 2:
            continue
        steps = list(zip(present, present[1:], strict=False))
        holds = all(sics[a]["median"] >= sics[b]["median"] for a, b in steps)
        within = all(sics[a]["median"] >= sics[b]["median"] or sics[a]["hi"] >= sics[b]["lo"] for a, b in steps)
        out.append({"method": method, "s_over_b": sb, "modes": present,
                    "medians": [sics[m]["median"] for m in present], "holds": holds, "within_bands": within})
    return out


def _num(x: Any, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def table(rows: list[dict[str, Any]], level: float = 0.68) -> str:
    """The summary as a markdown table."""
    pct = round(100 * level)
    head = ["Method", "Mode", "S/B in SR", "S / B events", "S/√B", f"max SIC median [{pct}% band]", "seed ensemble",
            "S/√B after cut", "truth AUC", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|:---|:---|" + "---:|" * (len(head) - 2)]
    for r in rows:
        s = r["max_sic"]
        lines.append("| " + " | ".join([
            r["method"], r["label_mode"], f"{100 * r['s_over_b']:.3g}%",
            f"{r['n_signal_sr']:,.0f} / {r['n_background_sr']:,.0f}", _num(r["s_over_sqrt_b"]),
            f"{_num(s['median'])} [{_num(s['lo'])}, {_num(s['hi'])}]", _num(r["max_sic_ensemble"]),
            _num(r["best_s_over_sqrt_b"]), _num(r["auc"]["median"], 3), str(r["n_seeds"])]) + " |")
    return "\n".join(lines) + "\n"


def notes(rows: list[dict[str, Any]], order: list[dict[str, Any]], split: str) -> str:
    """The table's conventions and the modes' ordering, as a paragraph and a list."""
    floor = next((r["floor_eff_b"] for r in rows if r.get("floor_eff_b")), None)
    where = ("the independent truth-labelled signal-region test set (scored by the mean of the fold models)"
             if split == "test" else "the signal region's data, each event scored by the fold model that did not "
             "see it")
    text = [f"SIC = ε_S/√ε_B on {where}, over cuts keeping ε_B ≥ {_num(floor, 6) if floor else '–'} (the floor "
            "on the background efficiency of that sample); median and 68% band (16th-84th percentile) over seeds; "
            "seed ensemble: the mean of the seeds' probabilities. S/B, S/√B: the signal region's data before any "
            "cut; after cut: S/√B × median max SIC.", ""]
    for o in order:
        chain = f"{o['modes'][0]} {o['medians'][0]:.2f}"
        for i in range(1, len(o["modes"])):
            chain += f" {'≥' if o['medians'][i - 1] >= o['medians'][i] else '<'} {o['modes'][i]} {o['medians'][i]:.2f}"
        verdict = ("holds" if o["holds"] else "holds within the 68% bands" if o["within_bands"] else
                   "does not hold")
        text.append(f"- {o['method']} at S/B {100 * o['s_over_b']:.3g}%: {chain} — {verdict}")
    return "\n".join(text) + "\n"


def write_search_report(out: str | os.PathLike[str], records: list[dict[str, Any]], split: str,
                        curves: dict[float, dict[str, tuple[np.ndarray, np.ndarray]]],
                        meta: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``anomaly.md``, ``anomaly.json``, ``max_sic_vs_sb.png`` and ``sic_sb<S/B>.png`` (one per S/B, from
    ``curves[s_over_b][name] = (eff_s, sic)``) into ``out``; returns the paths."""
    from hybridjet.eval import plots

    out = Path(out)
    rows = summarize(records, split)
    order = ordering(rows)
    paths = {"markdown": out / "anomaly.md", "json": out / "anomaly.json", "max_sic": out / "max_sic_vs_sb.png"}
    with atomic_path(paths["markdown"], suffix=".md") as tmp:
        tmp.write_text("# Resonance search: max SIC\n\n" + table(rows) + "\n" + notes(rows, order, split))
    write_json(paths["json"], {"meta": {**(meta or {}), "split": split}, "rows": rows, "ordering": order,
                               "records": records,
                               "curves": {f"{sb:g}": {n: {"eff_s": c[0].tolist(), "sic": c[1].tolist()}
                                                      for n, c in named.items()} for sb, named in curves.items()}})
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        series.setdefault(f"{r['method']} {r['label_mode']}", []).append({"s_over_b": r["s_over_b"], **r["max_sic"]})
    floor = rows[0]["floor_eff_b"] if rows else None
    with plots.plot_style(plots.default_style()):
        plots.plot_max_sic_vs_sb(series, paths["max_sic"], title=f"max SIC on the {split} split")
        for sb, named in curves.items():
            paths[f"sic_{sb:g}"] = plots.plot_sic(named, out / f"sic_sb{sb:g}.png", floor,
                                                  title=f"injected S/B {100 * sb:.3g}%")
    return paths
