import pytest

from hybridjet.eval.search_report import notes, ordering, summarize


def _record(mode, seed, sic, sb=0.01):
    return {"method": "gbdt", "label_mode": mode, "s_over_b": sb, "seed": seed,
            "counts": {"n_signal_sr": 10, "n_background_sr": 1000},
            "search": {"test": {"max_sic": sic, "auc": 0.8, "floor_eff_b": 1e-3}}}


def test_rows_keep_the_injected_s_over_b_and_the_ordering_is_judged_on_medians_and_bands():
    records = [_record("supervised", s, 8.0 + s) for s in range(3)]
    records += [_record("idealized", s, 2.0 + s) for s in range(3)]  # median 3, band up to ~3.7
    records += [_record("cwola", s, 3.2 + 0.1 * s) for s in range(3)]  # median 3.3 > 3, bands overlap
    rows = summarize(records, "test")
    assert all(r["s_over_b"] == 0.01 for r in rows) and rows[0]["s_over_b_data"] == 0.01
    assert rows[0]["best_s_over_sqrt_b"] == rows[0]["s_over_sqrt_b"] * 9.0
    (order,) = ordering(rows)
    assert order["modes"] == ["supervised", "idealized", "cwola"] and order["medians"] == pytest.approx([9.0, 3.0, 3.3])
    assert not order["holds"] and order["within_bands"]
    assert "supervised 9.00 ≥ idealized 3.00 < cwola 3.30 — holds within the 68% bands" in notes(rows, [order], "test")
    far = summarize(records[:3] + [_record("cwola", s, 20.0) for s in range(3)], "test")
    assert not ordering(far)[0]["within_bands"]


def test_max_sic_figure_colours_methods_styles_modes_and_labels_the_injected_values(tmp_path, monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from hybridjet.eval import plots

    captured = {}
    save = plots._save

    def keep(fig, path):
        captured["ax"] = fig.axes[0]
        captured["labels"] = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        return save(fig, path)

    points = [{"s_over_b": sb, "median": 5.0 + sb, "lo": 4.0, "hi": 6.0} for sb in (0.003, 0.01, 0.3)]
    names = [f"{m} {mode}" for m in ("gbdt", "hybrid") for mode in ("supervised", "cwola")]
    monkeypatch.setattr(plots, "_save", keep)  # the axes, as drawn, before saving
    plots.plot_max_sic_vs_sb({n: points for n in names}, tmp_path / "m.png")
    plt.close("all")
    lines = {ln.get_label(): ln for ln in captured["ax"].get_lines()}
    assert lines["gbdt supervised"].get_color() == lines["gbdt cwola"].get_color()
    assert lines["gbdt supervised"].get_color() != lines["hybrid supervised"].get_color()
    assert lines["gbdt cwola"].get_linestyle() == lines["hybrid cwola"].get_linestyle()
    assert lines["gbdt cwola"].get_linestyle() != lines["gbdt supervised"].get_linestyle()
    assert captured["labels"] == ["0.3", "1", "30"]
    assert (tmp_path / "m.png").stat().st_size > 0


def test_max_sic_figure_breaks_a_line_where_a_method_was_not_trained(tmp_path, monkeypatch) -> None:
    """A method trained at 0.1% and 5% only, beside one trained at every S/B, is not drawn as a straight line through
    the S/B values it has no runs at (it would read as measured there)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from hybridjet.eval import plots

    captured = {}
    save = plots._save

    def keep(fig, path):
        captured["ax"] = fig.axes[0]
        return save(fig, path)

    def pts(sbs):
        return [{"s_over_b": sb, "median": 2.0 + 100 * sb, "lo": 1.5 + 100 * sb, "hi": 2.5 + 100 * sb} for sb in sbs]

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_max_sic_vs_sb({"gbdt cwola": pts((0.001, 0.003, 0.01, 0.05)), "hybrid cwola": pts((0.001, 0.05)),
                              "hybrid idealized": pts((0.003, 0.01))}, tmp_path / "m.png")
    plt.close("all")
    lines = {ln.get_label(): ln for ln in captured["ax"].get_lines()}
    x, y = (np.asarray(v, dtype=float) for v in lines["hybrid cwola"].get_data())
    assert x.tolist() == [0.1, 0.3, 1.0, 5.0]
    assert np.isfinite(y).tolist() == [True, False, False, True]  # two points, no segment between them
    x, y = (np.asarray(v, dtype=float) for v in lines["hybrid idealized"].get_data())
    assert x.tolist() == [0.3, 1.0] and np.isfinite(y).all()  # within its own range: not stretched to the grid's
    assert np.isfinite(np.asarray(lines["gbdt cwola"].get_data()[1], dtype=float)).all()
    bars = [c for c in captured["ax"].collections if type(c).__name__ == "LineCollection"]
    assert sum(len(c.get_segments()) for c in bars) == 2  # the lone points' bands, drawn as bars
