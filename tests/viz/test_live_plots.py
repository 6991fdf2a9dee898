"""Live plots: run_udf(plots=...) redraws every 2-D result while partitions merge (matplotlib,
Agg backend), throttled by the plot_interval_s setting, with the final results always drawn."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from libertem_gpu import Context, SumSigUDF, SumUDF, config
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.viz import LivePlot
from libertem_gpu.viz import driver as plot_driver
from tests.conftest import random_data
from tests.optional import import_or_skip

NAV, SIG, PARTS = (5, 7), (6, 4), 4


@pytest.fixture
def mpl(monkeypatch):
    """matplotlib on the Agg backend; every figure closed afterwards."""
    matplotlib = import_or_skip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield matplotlib
    plt.close("all")


@pytest.fixture
def drawn(mpl, monkeypatch):
    """What every MPLLivePlot drew: (plot, the image array as drawn) per update."""
    from libertem_gpu.viz.mpl import MPLLivePlot

    record: list = []
    update = MPLLivePlot.update

    def recording(self):  # type: ignore[no-untyped-def]
        update(self)
        self.fig.canvas.draw()  # the Agg canvas renders: the image is really drawable
        record.append((self, np.ma.array(self.image.get_array(), copy=True)))

    monkeypatch.setattr(MPLLivePlot, "update", recording)
    return record


@pytest.fixture
def data(rng):
    return random_data(rng, NAV + SIG, "float32")


@pytest.fixture
def dataset(data):
    with Context("inline") as ctx:
        return ctx.load("memory", data=data, num_partitions=PARTS)


def _as_drawn(result) -> np.ndarray:
    """A result as the plot should show it: float64, NaN at scan positions not yet processed;
    frames (``sig`` results) as merged so far."""
    if result.kind != "nav":
        return result.data.astype(np.float64).squeeze()
    return np.asarray(result.masked_data.astype(np.float64).filled(np.nan)).squeeze()


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_plots_follow_the_partial_results(executor, data, dataset, drawn):
    udfs = [SumUDF(), SumSigUDF()]
    partials = []
    with Context(executor) as ctx, config.set(plot_interval_s=0):
        for partial in ctx.run_udf_iter(dataset, udfs, plots=True):
            # The plots are redrawn before the results they show are yielded.
            frame_plot = [img for p, img in drawn if p.channel == "intensity" and p.udf is udfs[0]]
            scan_plot = [img for p, img in drawn if p.udf is udfs[1]]
            assert len(frame_plot) == len(scan_plot) == len(partials) + 1
            np.testing.assert_array_equal(
                frame_plot[-1].filled(np.nan), _as_drawn(partial.buffers[0]["intensity"])
            )
            np.testing.assert_array_equal(
                scan_plot[-1].filled(np.nan), _as_drawn(partial.buffers[1]["intensity"])
            )
            partials.append(partial)
    assert len(partials) == PARTS
    # The first update came before the end and showed part of the scan only.
    first_scan = next(img for p, img in drawn if p.udf is udfs[1])
    assert 0 < np.count_nonzero(~np.ma.getmaskarray(first_scan)) < np.prod(NAV)
    # The last update shows the final results (frame: first plot; scan: second).
    assert drawn[-2][0].udf is udfs[0] and drawn[-1][0].udf is udfs[1]
    np.testing.assert_allclose(drawn[-2][1], data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(drawn[-1][1], data.sum(axis=(2, 3), dtype=np.float64), rtol=1e-5)
    assert not np.ma.getmaskarray(drawn[-1][1]).any()


def test_run_udf_draws_the_final_result(dataset, drawn):
    with Context("threads") as ctx:  # default interval: at most the final draw is certain
        result = ctx.run_udf(dataset, SumUDF(), plots=True)
    plot, image = drawn[-1]
    assert plot.channel == "intensity" and plot.title == "SumUDF: intensity"
    np.testing.assert_array_equal(image, result["intensity"].data.astype(np.float64))
    np.testing.assert_array_equal(plot.image.get_clim(), plot.limits())
    assert plot.mode == "window"


def test_channels_by_name_and_function(data, dataset, drawn):
    udfs = [SumUDF(), SumSigUDF()]
    with Context("inline") as ctx:
        sums, _ = ctx.run_udf(dataset, udfs, plots=[[("intensity", np.abs)], []])
        assert {id(p) for p, _ in drawn} == {id(drawn[0][0])}  # one plot: the first UDF's
        assert drawn[0][0].title == "SumUDF: absolute(intensity)"
        np.testing.assert_allclose(drawn[-1][1], np.abs(sums["intensity"].data))
        ctx.run_udf(dataset, udfs, plots=[[], ["intensity"]])
        assert drawn[-1][0].udf is udfs[1]
        with pytest.raises(InvalidParameterError, match="no result 'mean'.*'intensity'"):
            ctx.run_udf(dataset, udfs, plots=[["mean"]])
        line = ctx.load("memory", data=data[0], num_partitions=2)  # nav (7,): a line
        with pytest.raises(InvalidParameterError, match=r"shape \(7,\), not an image"):
            ctx.run_udf(line, SumSigUDF(), plots=[["intensity"]])
        with pytest.warns(UserWarning, match="SumSigUDF has no 2-D result"):
            ctx.run_udf(line, SumSigUDF(), plots=True)
        with pytest.raises(InvalidParameterError, match="plots must be True"):
            ctx.run_udf(dataset, SumUDF(), plots="intensity")


class Recorder(LivePlot):
    """A plot for another front end: records every call."""

    def __init__(self, udf=None):  # type: ignore[no-untyped-def]
        super().__init__(udf)
        self.calls: list = []

    def display(self):  # type: ignore[no-untyped-def]
        self.calls.append(("display",))

    def new_data(self, results, damage):  # type: ignore[no-untyped-def]
        self.calls.append(("new_data", {k: v.data.copy() for k, v in results.items()}, damage))

    def update(self):  # type: ignore[no-untyped-def]
        self.calls.append(("update",))


def test_user_plot_receives_the_calls(dataset, monkeypatch):
    # No matplotlib needed for plot objects of one's own.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    udfs = [SumUDF(), SumSigUDF()]
    plot = Recorder(udf=udfs[1])
    with Context("inline") as ctx, config.set(plot_interval_s=0):
        _, scan = ctx.run_udf(dataset, udfs, plots=[plot])
        assert [c[0] for c in plot.calls] == ["display"] + ["new_data", "update"] * PARTS
        news = [c for c in plot.calls if c[0] == "new_data"]
        assert all(set(c[1]) == {"intensity"} for c in news)
        assert [int(c[2].sum()) for c in news] == sorted(int(c[2].sum()) for c in news)
        assert news[0][2].shape == NAV and not news[0][2].all() and news[-1][2].all()
        np.testing.assert_array_equal(news[-1][1]["intensity"], scan["intensity"].data)
        with pytest.raises(InvalidParameterError, match=r"plots\[0\]\.udf .* not one of the UDFs"):
            ctx.run_udf(dataset, SumUDF(), plots=[Recorder(udf=SumUDF())])


class FakeClock:
    """Time that advances by ``step`` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_updates_are_throttled_and_the_last_is_drawn(data, monkeypatch):
    clock = FakeClock(0.1)
    monkeypatch.setattr(plot_driver, "_now", clock)
    parts = 12
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=parts)

        def draws(**settings):  # type: ignore[no-untyped-def]
            plot = Recorder()
            times: list = []
            plot.update = lambda: times.append(clock.t)  # type: ignore[method-assign]
            with config.set(**settings):
                ctx.run_udf(ds, SumSigUDF(), plots=[plot])
            final = [c for c in plot.calls if c[0] == "new_data"][-1]
            assert final[2].all()  # the final results, always drawn
            return times

        every = draws(plot_interval_s=0)
        assert len(every) == parts
        throttled = draws(plot_interval_s=0.45)
        assert 1 < len(throttled) < parts
        gaps = np.diff(throttled[:-1])  # the last draw is forced: it may come sooner
        assert (gaps >= 0.45).all()
        monkeypatch.setenv("LIBERTEM_GPU_PLOT_INTERVAL_S", "1e9")
        assert len(draws(plot_interval_s=0)) == 1  # the environment wins: the final draw only
        monkeypatch.setenv("LIBERTEM_GPU_PLOT_INTERVAL_S", "-1")
        with pytest.raises(ValueError, match="LIBERTEM_GPU_PLOT_INTERVAL_S='-1'"):
            draws()


def test_missing_matplotlib_is_a_clear_error(dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.delitem(sys.modules, "libertem_gpu.viz.mpl", raising=False)
    with Context("inline") as ctx:
        for plots in (True, [["intensity"]]):
            with pytest.raises(ImportError, match=r"matplotlib.*libertem_gpu\[viz\]"):
                ctx.run_udf(dataset, SumUDF(), plots=plots)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        from libertem_gpu.viz import MPLLivePlot  # noqa: F401


def test_empty_roi_draws_the_initial_results(dataset, drawn):
    with Context("inline") as ctx:
        ctx.run_udf(dataset, SumSigUDF(), roi=np.zeros(NAV, bool), plots=True)
    assert len(drawn) == 1 and np.ma.getmaskarray(drawn[0][1]).all()


class FakeNotebook:
    """An IPython kernel as the plots see it: ``get_ipython().config`` holds IPKernelApp, and
    ``IPython.display.display`` records what it shows."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import types

        self.shown: list = []
        self.updated: list = []
        shell = types.SimpleNamespace(config={"IPKernelApp": {}})
        ipython = types.ModuleType("IPython")
        ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
        display = types.ModuleType("IPython.display")
        display.display = self.display  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "IPython", ipython)
        monkeypatch.setitem(sys.modules, "IPython.display", display)

    def display(self, obj, display_id=False):  # type: ignore[no-untyped-def]
        import types

        self.shown.append(obj)
        return types.SimpleNamespace(update=self.updated.append)


def test_jupyter_static_refresh_and_ipympl(dataset, drawn, monkeypatch):
    import matplotlib.pyplot as plt

    notebook = FakeNotebook(monkeypatch)
    with Context("inline") as ctx, config.set(plot_interval_s=0):
        ctx.run_udf(dataset, SumSigUDF(), plots=True)
        plot = drawn[-1][0]
        assert plot.mode == "static"
        # Shown once, then the same output replaced at every redraw; pyplot forgets the figure
        # so that the inline backend does not show it a second time.
        assert notebook.shown == [plot.fig] and notebook.updated == [plot.fig] * PARTS
        assert plot.fig.number not in plt.get_fignums()
        monkeypatch.setattr("matplotlib.get_backend", lambda: "module://ipympl.backend_nbagg")
        ctx.run_udf(dataset, SumSigUDF(), plots=True)
        plot = drawn[-1][0]
        assert plot.mode == "widget" and notebook.shown[-1] is plot.fig.canvas
        assert len(notebook.updated) == PARTS  # redrawn in place, not replaced


def test_libertem_compatible_context_passes_plots(data):
    import libertem_gpu.compat.api as lt

    plot = Recorder()
    with lt.Context.make_with("inline") as ctx, config.set(plot_interval_s=0):
        ds = ctx.load("memory", data=data, num_partitions=PARTS)
        result = ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
        assert [c[0] for c in plot.calls].count("update") == PARTS
        partials = list(ctx.run_udf_iter(dataset=ds, udf=SumSigUDF(), plots=[Recorder()]))
    np.testing.assert_array_equal(plot.calls[-2][1]["intensity"], result["intensity"].data)
    assert len(partials) == PARTS
