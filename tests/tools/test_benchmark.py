"""The maintainer's benchmark (tools/benchmark.py): plan, measurement, ratios, table.

Speed itself is never asserted here (docs/performance.md has the measured tables);
these tests check that the numbers are computed from what was measured. The script
lives outside the package and is imported by its path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import keras
import pytest
from support.capabilities import needs_channels_first

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_tool(name):
    """``tools/<name>.py`` as a module (registered first: its dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location(f"tools_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


benchmark = _load_tool("benchmark")
Case, cpu_peak, format_rows, plan, run_case, summarize = (
    benchmark.Case, benchmark.cpu_peak, benchmark.format_rows, benchmark.plan, benchmark.run_case,
    benchmark.summarize,
)


def test_cpu_peak_is_the_product_it_prints():
    peak = cpu_peak()
    assert peak.gflops == pytest.approx(peak.cores * peak.ghz * peak.fma_units * (peak.simd_bits // 32) * 2)
    assert peak.simd_bits in (128, 256, 512) and peak.cores >= 1
    assert f"{peak.gflops:.0f} GFLOP/s" in peak.how


def test_peak_is_unknown_where_proc_cpuinfo_cannot_be_read(monkeypatch):
    def unreadable(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(benchmark, "open", unreadable, raising=False)  # the module's own open()
    monkeypatch.setattr(benchmark, "_macs", lambda case: 1_000_000_000)
    peak = cpu_peak()
    assert peak.gflops is None and peak.how.startswith("peak unknown: cannot read /proc/cpuinfo")
    assert "Permission denied" in peak.how
    rows = summarize(plan("infer", ["resnet18"], ["jax"], 1, 32, 1, 0)[:1], [{"img_s": 5.0, "spread": 0.0}], peak)
    assert (rows[0]["img_s"], rows[0]["gmac_s"], rows[0]["peak_pct"]) == (5.0, 5.0, None)


def test_peak_is_unknown_without_a_clock_and_counts_cores_without_affinity(tmp_path, monkeypatch):
    arm = tmp_path / "cpuinfo"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n")
    real_read = benchmark.read_cpuinfo
    monkeypatch.setattr(benchmark, "read_cpuinfo", lambda: real_read(str(arm)))
    assert cpu_peak().how == "peak unknown: /proc/cpuinfo names no clock (cpu MHz)"
    x86 = tmp_path / "x86"
    x86.write_text("vendor_id\t: GenuineIntel\ncpu family\t: 6\ncpu MHz\t\t: 2000.000\nflags\t: fma avx2\n" * 2)
    monkeypatch.setattr(benchmark, "read_cpuinfo", lambda: real_read(str(x86)))
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    peak = cpu_peak()
    assert (peak.cores, peak.ghz, peak.simd_bits, peak.fma_units) == (3, 2.0, 256, 2)
    assert peak.gflops == pytest.approx(3 * 2.0 * 2 * 8 * 2)


def test_command_line_refuses_bad_numbers_and_unknown_models(capsys):
    assert benchmark.main(["--batch-size", "0"]) == 2
    assert benchmark.main(["--rounds", "0"]) == 2
    assert "--rounds must be positive" in capsys.readouterr().err
    assert benchmark.main(["--models", "resnet51"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Unknown model name 'resnet51'" in err and "resnet50" in err


def test_plan_pairs_each_of_ours_with_keras_applications_per_backend_and_layout():
    cases = plan("infer", ["resnet50", "squeezenet1_1"], ["tensorflow", "torch"], 4, 64, 2, 0,
                 ("channels_last", "channels_first"))
    ours = [c for c in cases if c.impl == "ours"]
    # resnet50 twice (torchvision's v1.5, and keras.applications' v1 for that ratio)
    assert len(ours) == 3 * 2 * 2
    assert sum(c.options == {"stride_in_1x1": True} for c in ours) == 2 * 2
    apps = [(c.model, c.backend, c.data_format) for c in cases if c.impl == "keras_applications"]
    assert sorted(apps) == sorted((("resnet50", b, f) for b in ("tensorflow", "torch")
                                   for f in ("channels_last", "channels_first")))
    # torchvision eager per model that has a torchvision reference, in NCHW and channels_last memory
    assert [(c.model, c.data_format) for c in cases if c.impl == "torchvision"] == [
        (m, f) for m in ("resnet50", "squeezenet1_1") for f in ("channels_first", "channels_last")]
    assert {c.precision for c in plan("train", ["resnet18"], ["jax"], 4, 64, 2, 0)} == {"float32", "bfloat16"}


def test_every_worker_of_a_run_gets_the_same_allocator_settings(monkeypatch):
    seen = []

    def fake_run(cmd, env, **kwargs):
        seen.append((json.loads(cmd[-1])["impl"], env.get("GLIBC_TUNABLES")))
        return type("Done", (), {"stdout": '{"img_s": 1.0, "spread": 0.0}', "stderr": ""})()

    monkeypatch.setattr(benchmark.subprocess, "run", fake_run)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    for allocator in ("retain", "system"):
        for case in plan("infer", ["resnet18"], ["torch"], 2, 64, 1, 0, allocator=allocator):
            assert benchmark.run_in_subprocess(case) == {"img_s": 1.0, "spread": 0.0}
    assert [impl for impl, _ in seen] == ["ours", "torchvision", "torchvision"] * 2
    retain = benchmark.ALLOCATORS["retain"]
    assert "mmap_threshold" in retain and "trim_threshold" in retain
    assert [tunables for _, tunables in seen] == [retain] * 3 + [None] * 3


def test_rounds_interleave_the_cases_and_report_the_median_process(monkeypatch):
    order = []
    rates = {"ours": iter([10.0, 30.0, 20.0]), "keras_applications": iter([12.0, 11.0, 13.0]),
             "torchvision": iter([5.0] * 6)}  # NCHW and channels_last

    def fake_process(case):
        order.append(case.impl)
        return {"img_s": next(rates[case.impl]), "spread": 0.5}

    monkeypatch.setattr(benchmark, "run_in_subprocess", fake_process)
    monkeypatch.setattr(benchmark, "_macs", lambda case: None)
    out = benchmark.run_suite("infer", ["vgg16"], ["jax"], 2, 32, 1, 0, fmt="json", progress=lambda m: None,
                              rounds=3)
    assert order == ["ours", "keras_applications", "torchvision", "torchvision"] * 3
    rows = json.loads(out.split("\n\n")[0])
    assert (rows[0]["img_s"], rows[0]["spread"]) == (20.0, 20.0)  # median and range over 3 processes
    assert (rows[1]["img_s"], rows[1]["spread"]) == (12.0, 2.0)
    assert rows[0]["vs_keras_app"] == pytest.approx(20.0 / 12.0)
    assert "Rounds: 3 processes per case" in out


def test_combine_rounds_leaves_out_failed_processes():
    combine = benchmark.combine_rounds
    assert combine([{"error": "killed"}, {"seconds": 2.0, "first_s": 3.0, "spread": 0.1}]) == {
        "seconds": 2.0, "first_s": 3.0, "spread": 0.1}
    assert combine([{"error": "a"}, {"error": "b"}]) == {"error": "a"}
    three = combine([{"seconds": s, "first_s": 2 * s, "spread": 0.0} for s in (1.0, 4.0, 2.0)])
    assert three == {"seconds": 2.0, "first_s": 4.0, "spread": 3.0}


def test_summary_ratios_and_peak_fraction(monkeypatch):
    monkeypatch.setattr(benchmark, "_macs", lambda case: 2_000_000_000)
    cases = plan("infer", ["resnet50"], ["jax"], 16, 224, 3, 0)
    results = {"ours": {"img_s": 10.0, "spread": 0.5}, "keras_applications": {"img_s": 8.0, "spread": 0.1},
               ("torchvision", "channels_first"): {"img_s": 4.0, "spread": 0.2},
               ("torchvision", "channels_last"): {"img_s": 5.0, "spread": 0.2}}
    peak = benchmark.CpuPeak(2, 2.5, 256, 2, 160.0, "how")
    rows = summarize(cases, [results.get(c.impl) or results[c.impl, c.data_format] for c in cases], peak)
    ours = next(r for r in rows if r["impl"] == "ours")
    assert ours["vs_torchvision"] == pytest.approx(2.5) and ours["vs_keras_app"] is None  # v1.5 vs v1
    assert ours["vs_torchvision_nhwc"] == pytest.approx(2.0)  # torchvision in channels_last memory
    same_as_keras = next(r for r in rows if r["impl"] == "ours stride_in_1x1=True")
    assert same_as_keras["vs_keras_app"] == pytest.approx(1.25) and same_as_keras["vs_torchvision"] is None
    assert ours["gmac_s"] == pytest.approx(20.0)  # 10 img/s x 2 GMAC
    assert ours["peak_pct"] == pytest.approx(25.0)  # of 80 GMAC/s
    assert [r["layout"] for r in rows if r["impl"] == "torchvision"] == ["NCHW", "NHWC"]


def test_each_row_counts_the_multiply_adds_of_its_own_architecture():
    cases = {c.label: c for c in plan("infer", ["resnet50"], ["tensorflow"], 1, 64, 1, 0)}
    v15, v1 = benchmark._macs(cases["ours"]), benchmark._macs(cases["ours stride_in_1x1=True"])
    assert benchmark._macs(cases["torchvision"]) == v15
    assert v15 > v1  # v1.5 strides the 3x3, v1 the 1x1 before it
    # keras.applications' v1 has the same convolutions as ours with stride_in_1x1=True
    assert benchmark._macs(cases["keras_applications"]) == v1


def test_failed_cases_show_their_error_and_formats_render():
    cases = plan("build", ["densenet201"], ["torch"], 1, 224, 1, 0)
    rows = summarize(cases, [{"error": "MemoryError"}, {"first_s": 3.0, "seconds": 2.0, "spread": 0.1}],
                     cpu_peak())
    assert rows[0]["error"] == "MemoryError"
    assert (rows[1]["first_s"], rows[1]["seconds"]) == (3.0, 2.0)
    table = format_rows(rows)
    assert "MemoryError" in table and table.splitlines()[1].startswith("-")
    assert format_rows(rows, "csv").splitlines()[0].startswith("model,impl,backend,layout")
    assert json.loads(format_rows(rows, "json"))[1]["seconds"] == 2.0


@pytest.mark.parametrize(
    "data_format", ["channels_last", pytest.param("channels_first", marks=needs_channels_first)])
def test_run_case_measures_a_real_forward_pass(data_format):
    case = Case("infer", model="squeezenet1_1", impl="ours", backend=keras.backend.backend(), batch=2,
                image_size=64, repeat=2, warmup=1, data_format=data_format)
    result = run_case(case)
    assert result["img_s"] > 0 and result["spread"] >= 0
    assert keras.config.image_data_format() == data_format  # the worker process keeps it


def test_run_case_times_builds_and_train_steps():
    backend = keras.backend.backend()
    built = run_case(Case("build", model="resnet18", impl="ours", backend=backend, image_size=32, repeat=2))
    assert built["first_s"] > 0 and built["seconds"] > 0 and built["spread"] == 0  # one later build
    trained = run_case(Case("train", model="resnet18", impl="ours", backend=backend, batch=2, image_size=32,
                            repeat=1, warmup=1))
    assert trained["img_s"] > 0


@pytest.mark.heavy("benchmark-export-suite")
def test_export_suite_times_keras_and_every_exported_file():
    rows = benchmark.export_rows(["squeezenet1_1"], [keras.backend.backend()], 64, 1, progress=lambda m: None)
    runtimes = [(r["runtime"], r["precision"]) for r in rows]
    assert runtimes == [(f"Keras {keras.backend.backend()}", "float32")] + [
        (benchmark.RUNTIME[fmt], q.replace("none", "float32")) for fmt, q in benchmark.EXPORT_VARIANTS]
    assert all("error" not in r and r["ms_1_thread"] > 0 and r["ms_all_threads"] > 0 for r in rows)
    files = rows[1:]
    assert all(r["max_diff"] <= 1e-4 for r in files if r["precision"] == "float32")
    size = {(r["runtime"], r["precision"]): r["size_mb"] for r in files}
    assert size[("LiteRT", "int8")] < size[("LiteRT", "float16")] < size[("LiteRT", "float32")]
    assert rows[0]["vs_fastest_keras"] == pytest.approx(1.0)
    assert "vs_fastest_keras" in format_rows(rows)


def test_a_worker_process_runs_the_script_itself():
    case = Case("build", model="lenet5", impl="ours", backend=keras.backend.backend(), image_size=32, repeat=2)
    result = benchmark.run_in_subprocess(case, timeout=600)
    assert "error" not in result, result
    assert result["first_s"] > 0 and result["seconds"] > 0


@pytest.mark.parametrize("memory_format", benchmark.TORCHVISION_MEMORY_FORMATS)
def test_run_case_times_torchvision_in_both_memory_formats(memory_format):
    case = Case("infer", model="squeezenet1_1", impl="torchvision", backend="torch", batch=2,
                image_size=64, repeat=1, warmup=1, data_format=memory_format)
    assert run_case(case)["img_s"] > 0
