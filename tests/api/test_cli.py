"""The ``cnnclassics`` command line: light --help, quiet backends, ``info`` rows, the
package's layers in a command's process, and the maintainer's ``tools/model_table.py``
(list and table output: test_cli_success.py).

Speed is measured by ``tools/cli_speed.py`` (a table, not a timed test); here the
tests check what makes ``--help`` fast: no Keras and no backend imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_cnnclassics import cli, stats
from keras_cnnclassics.registry import get_spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = keras.backend.backend()
HEAVY_MODULES = ("keras", "tensorflow", "jax", "torch")

# Runs every subcommand's --help in one fresh interpreter and prints the heavy modules loaded.
HELP_EVERYWHERE = f"""
import contextlib, io, sys
from keras_cnnclassics import cli
for argv in [["--help"]] + [[name, "--help"] for name in cli.COMMAND_MODULES]:
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        cli.main(argv)
    assert "usage: cnnclassics" in out.getvalue(), argv
print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))
"""


def _run(argv, **env):
    """``cnnclassics argv`` in a fresh interpreter on this backend, ``TF_CPP_MIN_LOG_LEVEL`` unset
    unless given (a new user's shell)."""
    environ = {k: v for k, v in os.environ.items() if k != cli.LOG_LEVEL_VARIABLE}
    environ.update(KERAS_BACKEND=BACKEND, **env)
    return subprocess.run([sys.executable, "-m", "keras_cnnclassics.cli", *map(str, argv)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=600)


def _log_lines(text, level=3):
    """The backends' C++ log lines (and absl's notice) in ``text``."""
    return [line for line in text.splitlines() if cli.hidden_log_line(line, level)]


# ------------------------------------------------------------------ light --help


def test_help_of_every_command_imports_neither_keras_nor_a_backend():
    proc = subprocess.run([sys.executable, "-c", HELP_EVERYWHERE], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": BACKEND}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
    assert proc.stderr == ""


def test_import_of_the_package_is_light_and_its_names_load_on_first_use():
    code = ("import sys, keras_cnnclassics as kc; light = 'keras' not in sys.modules; "
            "from keras_cnnclassics import ResNet18, profile; "
            "print(light, callable(ResNet18), profile.__module__, 'VGG16' in dir(kc), 'VGG16' in kc.__all__, "
            "kc.ensemble.__name__, kc.weights.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": BACKEND}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "keras_cnnclassics.profiler", "True", "True", "ensemble",
                                   "keras_cnnclassics.weights"]


def test_global_flags_go_first_for_the_tools_scripts():
    assert cli.subcommand_argv("convert", ["--arch", "x", "--verbose", "--backend", "jax", "--debug"]) == [
        "--verbose", "--backend", "jax", "--debug", "convert", "--arch", "x"]
    args = cli.build_parser().parse_args(["--verbose", "export", "lenet5", "--format", "onnx", "--output", "x"])
    assert args.show_logs and not getattr(args, "verbose", False)  # main() merges a subcommand's --verbose


# ------------------------------------------------------------------ quiet backends


def test_hidden_log_lines_follow_the_level():
    info = "I0000 00:00:1795974203.728353    6635 port.cc:153] oneDNN custom operations are on."
    warning = "W0000 00:00:1795974203.728353    6635 cpu_feature_guard.cc:227] slow"
    error = "E0000 00:00:1795974203.728353    6635 cuda_dnn.cc:8] no DNN"
    assert [cli.hidden_log_line(info, n) for n in range(4)] == [False, True, True, True]
    assert [cli.hidden_log_line(warning, n) for n in range(4)] == [False, False, True, True]
    assert [cli.hidden_log_line(error, n) for n in range(4)] == [False, False, False, True]
    assert cli.hidden_log_line(cli.ABSL_NOTICE + "\n", 1) and not cli.hidden_log_line(cli.ABSL_NOTICE, 0)
    assert not cli.hidden_log_line("UserWarning: I0000 looks like a log line but is not one", 3)


def test_held_stderr_drops_only_the_hidden_lines_in_order(capfd):
    with cli.held_stderr(2):
        os.write(2, f"{cli.ABSL_NOTICE}\nkept 1\n".encode())
        os.write(2, b"I0000 00:00:1.5    7 port.cc:153] oneDNN on\nE0000 00:00:1.5    7 x.cc:1] kept 2\n")
        os.write(2, b"kept 3\n")
    assert capfd.readouterr().err == "kept 1\nE0000 00:00:1.5    7 x.cc:1] kept 2\nkept 3\n"


@pytest.mark.parametrize("argv", [["list"], ["info", "resnet18"], ["profile", "lenet5"]], ids=" ".join)
def test_commands_print_no_backend_log_lines(argv):
    proc = _run(argv)
    assert proc.returncode == 0, proc.stderr
    assert _log_lines(proc.stderr) == [] and _log_lines(proc.stdout) == []
    assert "Memory patch applied" not in proc.stderr + proc.stdout
    assert proc.stderr == "", proc.stderr


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's libraries print these lines while loading")
def test_verbose_and_a_users_own_level_show_tensorflows_lines():
    assert _log_lines(_run(["--verbose", "list", "lenet*"]).stderr)
    shown = _run(["list", "lenet*"], TF_CPP_MIN_LOG_LEVEL="0").stderr
    assert any(line.startswith(cli.ABSL_NOTICE) for line in _log_lines(shown)), shown


# ------------------------------------------------------------------ info, a saved model


@pytest.mark.parametrize("name", ["resnet50", "lenet5"])
def test_info_prints_every_known_field_and_no_empty_row(name, capsys):
    assert cli.main(["info", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = dict(line.split(None, 1) for line in lines if not line.startswith(" "))
    info = get_spec(name).info()
    known = {key for key, value in info.items() if value not in (None, "", {}, ())}
    assert set(rows) == known and all(value.strip() for value in rows.values())
    assert rows["params"] == f"{info['params']:,}" and rows["paper"] == info["paper"]
    assert cli.main(["info", name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == name


def test_info_lists_each_published_weight_tag_on_its_own_line(capsys):
    assert cli.main(["info", "resnet50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("weights "))
    assert lines[first].endswith("imagenet1k_v1: top-1 76.13 %, resize 256 / crop 224, resnet50-0676ba61.pth")
    assert lines[first + 1].strip() == "imagenet1k_v2 (default): top-1 80.86 %, resize 232 / crop 224, resnet50-11ad3fa6.pth"


def test_a_saved_model_loads_in_a_command_process(tmp_path):
    """The command line imports the package before Keras; its layers are still registered."""
    from keras_cnnclassics import LeNet5
    from keras_cnnclassics.weights import save_model

    image = tmp_path / "digit.png"
    keras.utils.save_img(image, np.random.default_rng(1).uniform(size=(32, 32, 1)))
    save_model(LeNet5(), str(tmp_path / "lenet5.keras"))
    proc = _run(["predict", tmp_path / "lenet5.keras", image, "--top-k", "2"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(image) and len(proc.stdout.splitlines()) == 3


# ------------------------------------------------------------------ tools/model_table.py


def _model_table(*argv):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "model_table.py"), *map(str, argv)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": BACKEND},
                          timeout=600)


def test_model_table_tool_checks_and_rewrites_a_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{stats.TABLE_START}\nold\n{stats.TABLE_END}\n")
    stale = _model_table("--check", readme)
    assert stale.returncode == 1 and "model table is stale" in stale.stdout
    assert _model_table("--update-readme", readme).returncode == 0
    assert stats.readme_table(readme) == stats.model_table_markdown()
    fresh = _model_table("--check", readme)
    assert fresh.returncode == 0 and "up to date" in fresh.stdout


def test_model_table_tool_refuses_bad_input_in_one_line(tmp_path):
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    for argv, fragment in [(["--update-readme", plain], "no <!-- model-table:start -->"),
                           (["--check", tmp_path / "missing.md"], "No such file or directory"),
                           ([], "nothing to do")]:
        proc = _model_table(*argv)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert fragment in proc.stderr
    assert plain.read_text() == "no markers\n"


def test_module_entry_point_reports_command_errors_in_one_line(tmp_path):
    """``python -m keras_cnnclassics.cli`` runs cli as ``__main__``: a CommandError raised by a
    subcommand must still be a user error (exit 2, one line), not an 'unexpected' crash."""
    script = (
        "import sys, keras_cnnclassics.commands.list as command\n"
        "from keras_cnnclassics.commands import CommandError\n"
        "def run(args): raise CommandError('planted user error')\n"
        "command.run = run\n"
        "sys.argv = ['cnnclassics', 'list']\n"
        "import runpy; runpy.run_module('keras_cnnclassics.cli', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "cnnclassics list: error: planted user error"
