"""The `langgraph-speculative` command: where it lives, --version, one-line errors, `chess --compare`."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib

from langgraph_speculative._cli import main as cli
from langgraph_speculative_graphs.chess._players import find_engine

ROOT = Path(__file__).resolve().parent.parent


def test_the_library_never_imports_the_ready_made_graphs_or_the_command() -> None:
    code = (
        "import langgraph_speculative, sys; "
        "bad = sorted(m for m in sys.modules if m.startswith(('langgraph_speculative_graphs', "
        "'langgraph_speculative._cli', 'graphs'))); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_console_script_points_into_the_library() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["langgraph-speculative"].partition(":")
    assert module == "langgraph_speculative._cli"
    assert getattr(importlib.import_module(module), attr) is cli


def test_the_wheel_installs_no_top_level_name_outside_the_library() -> None:
    """The wheel's packages, as hatch's config declares them: only `langgraph_speculative*` names (a
    bare `graphs` would collide with other distributions and with a user's own folder)."""
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert set(wheel) <= {"packages", "exclude"}, "force-include / sources / only-include: check their names"
    tops = {Path(p).name for p in wheel["packages"]}
    assert tops == {"langgraph_speculative", "langgraph_speculative_graphs"}


def test_the_built_wheel_installs_only_langgraph_speculative_names(tmp_path: Path) -> None:
    """Build the wheel with hatchling itself and read its top-level names, entry point and data."""
    import zipfile

    builders = pytest.importorskip("hatchling.builders.wheel")
    built = next(iter(builders.WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    wheel = zipfile.ZipFile(built)
    names = wheel.namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.startswith("langgraph_speculative")} == set(), tops
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(entry).decode()
    assert "langgraph-speculative = langgraph_speculative._cli:main" in text
    for data in (
        "langgraph_speculative_graphs/tau_retail/data/tasks_test_sample.json",
        "langgraph_speculative_graphs/hotpotqa/data/react_trajectories_dev.json",
        "langgraph_speculative_graphs/chess/data/paper_games.json",
    ):
        assert data in names


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    with pytest.raises(SystemExit) as exit:
        cli(["--version"])
    assert exit.value.code == 0
    version = metadata.version("langgraph-speculative")
    assert capsys.readouterr().out.strip() == f"langgraph-speculative {version}"
    import langgraph_speculative

    assert langgraph_speculative.__version__ == version and "__version__" in langgraph_speculative.__all__


@pytest.mark.parametrize("command", [["chess"], ["cfs"], ["eval", "tau-retail"], ["eval", "hotpotqa"]])
def test_every_subcommand_is_registered(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        cli([*command, "--help"])
    assert exit.value.code == 0
    assert "usage: langgraph-speculative " + " ".join(command) in capsys.readouterr().out


def test_python_dash_m_is_the_same_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "langgraph_speculative", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("langgraph-speculative ")


def _from(cwd: Path, *argv: str, block: str = "") -> subprocess.CompletedProcess[str]:
    """The command run in `cwd` on this checkout's code; `block`: a module made unimportable (a base
    install without that extra)."""
    code = "import sys; from langgraph_speculative._cli import main; sys.exit(main(sys.argv[1:]))"
    if block:
        code = f"import sys; sys.modules[{block!r}] = None; " + code
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_eval_tau_retail_runs_on_its_packaged_sample_from_an_empty_directory(tmp_path: Path) -> None:
    out = _from(tmp_path, "eval", "tau-retail", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["tasks"] == 15 and result["calls"] > 0  # the packaged 15-task test sample
    assert list(tmp_path.iterdir()) == []  # nothing written to the user's directory


def test_packaged_task_files_are_found_by_name_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from langgraph_speculative_graphs.hotpotqa._eval import load_runs
    from langgraph_speculative_graphs.tau_retail import load_tasks

    monkeypatch.chdir(tmp_path)
    # a short name, a file name, and the README's old repository path (not there from here)
    for name in ("dev", "tasks_dev.json", "graphs/tau_retail/data/tasks_dev.json", "tasks_dev"):
        assert len(load_tasks(name)) == 20
    assert len(load_tasks()) == 15 and len(load_runs()) == 50
    (tmp_path / "mine.json").write_text(json.dumps([{"actions": []}]))
    assert load_tasks("mine.json") == [{"actions": []}]  # a real file still wins
    assert cli(["eval", "tau-retail", "--tasks", "tasks_nope.json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines()[-1] == (
        "langgraph-speculative eval tau-retail: error: task file 'tasks_nope.json' not found; give a path, "
        "or a packaged one by name: test (tasks_test_sample.json), dev (tasks_dev.json), "
        "train (tasks_train.json)"
    )


@pytest.mark.skipif(importlib.util.find_spec("bm25s") is None, reason="needs the hotpotqa extra")
def test_eval_hotpotqa_runs_on_its_packaged_runs_from_an_empty_directory(tmp_path: Path) -> None:
    out = _from(tmp_path, "eval", "hotpotqa", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["runs"] == 50


@pytest.mark.parametrize(
    "argv",
    [
        ["chess"],
        ["chess", "--help"],
        ["chess", "--white", "openai:gpt-5", "--compare", "--timeline", "/nonexistent/t.png"],
        ["chess", "-x", "positional"],
    ],
)
def test_chess_on_a_base_install_names_its_extra_whatever_the_flags(tmp_path: Path, argv: list[str]) -> None:
    out = _from(tmp_path, *argv, block="chess")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("langgraph-speculative chess: needs the chess extra: ")
    assert "pip install 'langgraph-speculative[chess]'" in lines[0]


def test_help_on_a_base_install_lists_the_missing_subcommand(tmp_path: Path) -> None:
    out = _from(tmp_path, "--help", block="chess")
    assert out.returncode == 0
    assert "speculative chess self-play (needs the chess extra)" in out.stdout


def _fails_up_front(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> str:
    """Run the command expecting exit 2 with one line on stderr, before any game or run started."""

    def must_not_start(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("started before checking the specs")

    import langgraph_speculative_graphs.cfs._run as cfs_run
    import langgraph_speculative_graphs.chess._run as chess_run

    monkeypatch.setattr(chess_run, "make_graph", must_not_start)
    monkeypatch.setattr(cfs_run, "compare", must_not_start)
    assert cli(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"langgraph-speculative {argv[0]}: error: ")
    return lines[0]


def test_a_typo_in_an_engine_names_the_valid_choices(capsys: Any, monkeypatch: Any) -> None:
    line = _fails_up_front(["chess", "--white", "stockfsh:depth=3"], capsys, monkeypatch)
    assert "--white 'stockfsh:depth=3'" in line and "did you mean 'stockfish'?" in line
    assert "stockfish:depth=16 or sunfish:depth=3" in line and "openai:gpt-5" in line


def test_a_chat_model_without_its_key_or_its_package_says_the_fix(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    if importlib.util.find_spec("langchain_openai") is not None:
        line = _fails_up_front(["chess", "--white", "openai:gpt-5"], capsys, monkeypatch)
        assert "needs an API key: export OPENAI_API_KEY=..." in line
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "langchain_openai" else real_find_spec(name, *a),
    )
    line = _fails_up_front(["chess", "--speculator", "openai:gpt-5"], capsys, monkeypatch)
    assert "--speculator 'openai:gpt-5' needs the langchain-openai package" in line
    assert "pip install 'langgraph-speculative[openai]'" in line


def test_cfs_checks_its_actor_speculator_and_numbers_up_front(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    if importlib.util.find_spec("langchain_openai") is not None:
        line = _fails_up_front(["cfs", "--backend", "sim", "--actor", "openai:gpt-5"], capsys, monkeypatch)
        assert "--actor 'openai:gpt-5' needs an API key" in line and "careful or none" in line
    line = _fails_up_front(["cfs", "--backend", "sim", "--speculator", "locl"], capsys, monkeypatch)
    assert "did you mean 'local'?" in line
    line = _fails_up_front(["cfs", "--backend", "sim", "--duration", "0"], capsys, monkeypatch)
    assert "--duration must be positive" in line


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["chess", "--moves", "0"], "--moves must be at least 1"),
        (["chess", "--speculator", "sunfish:dept=3"], "unknown options ['dept']"),
        (["chess", "--white", "stockfish:depth=x"], "depth= needs a number"),
        (["chess", "--black", "stockfish:path=/nonexistent/sf"], "/nonexistent/sf is not an executable"),
        (["chess", "--white", "gpt-5"], "not a known choice"),
        (["chess", "--timeline", "/nonexistent/dir/t.png"], "directory /nonexistent/dir does not exist"),
        (["chess", "--timeline", "t.txt"], "matplotlib cannot write .txt files"),
        (["chess", "--depth", "100"], "--depth 100 is more than 8"),
    ],
)
def test_bad_chess_arguments_are_one_line(argv: Any, needle: str, capsys: Any, monkeypatch: Any) -> None:
    assert needle in _fails_up_front(argv, capsys, monkeypatch)


def test_eval_numbers_are_one_line_errors_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in (
        (
            ["eval", "tau-retail", "--tool-latency", "-1"],
            "--tool-latency must be 0 or more seconds, got -1.0",
        ),
        (["eval", "tau-retail", "--k", "0"], "--k must be at least 1, got 0"),
        (["eval", "hotpotqa", "--k", "0"], "--k must be at least 1, got 0"),
    ):
        assert cli(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.strip().splitlines() == [
            f"langgraph-speculative {' '.join(argv[:2])}: error: {needle}"
        ]


def test_a_provider_refusing_a_call_is_one_line(capsys: Any, monkeypatch: Any) -> None:
    import langgraph_speculative_graphs.chess._run as chess_run

    class AuthenticationError(Exception):
        pass

    AuthenticationError.__module__ = "openai._exceptions"  # as the SDK raises it

    def refused(args: Any) -> int:
        raise AuthenticationError("Error code: 401 - Incorrect API key provided\n(and a long body)")

    monkeypatch.setattr(chess_run, "run", refused)
    assert cli(["chess"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "langgraph-speculative chess: error: the model provider refused a call "
        "(AuthenticationError: Error code: 401 - Incorrect API key provided); "
        "check the model name and its key"
    ]
    monkeypatch.setattr(chess_run, "run", lambda args: 1 // 0)  # our own bugs keep their traceback
    with pytest.raises(ZeroDivisionError):
        cli(["chess"])


def _engines() -> tuple[str, str] | None:
    """A quick player and speculator: stockfish at low depth, or sunfish."""
    if find_engine("stockfish"):
        return "stockfish:depth=6", "stockfish:depth=3"
    if find_engine("sunfish"):
        return "sunfish:depth=1", "sunfish:depth=1"
    return None


needs_an_engine = pytest.mark.skipif(_engines() is None, reason="neither stockfish nor sunfish installed")


@needs_an_engine
def test_chess_compare_through_the_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    player, speculator = _engines() or ("", "")
    argv = ["chess", "--compare", "--json", "--moves", "6", "--white", player, "--speculator", speculator]
    assert cli(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["identical"] is True and len(out["moves"]) == out["plies"] == 6
    assert out["status"] == "move_limit"
    assert out["time_saved_pct"] == round(100 * (1 - out["speculative_s"] / out["sequential_s"]), 2)
    assert 0 <= out["adopted"] <= out["hits"] <= out["guessed_plies"] <= out["plies"]
    assert out["hidden_actor_s"] >= 0 and out["k"] == 3 and out["depth"] == 1
    assert set(out["players"]) == {"white", "black", "speculator"}
    assert out["players"]["white"].startswith(player)
    # progress on stderr: which engine plays, then a line per ply of each game
    for heading in ("white:", "speculator:", "sequential game:", "speculative game:"):
        assert heading in captured.err
    assert captured.err.count("  ply ") == 12


@needs_an_engine
def test_chess_without_compare_reports_no_wall_clock_saving(capsys: pytest.CaptureFixture[str]) -> None:
    player, speculator = _engines() or ("", "")
    assert cli(["chess", "--moves", "2", "--white", player, "--speculator", speculator]) == 0
    text = capsys.readouterr().out
    assert "saving not measured (--compare plays the sequential game too)" in text
    assert "hidden actor time" in text and "% saved" not in text
    assert cli(["chess", "--json", "--moves", "2", "--white", player, "--speculator", speculator]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sequential_s"] is None and out["time_saved_pct"] is None and out["identical"] is None


@needs_an_engine
def test_a_very_deep_engine_search_is_a_one_line_warning(capsys: Any, monkeypatch: Any) -> None:
    import langgraph_speculative_graphs.chess._run as chess_run

    def stop(game: Any) -> Any:
        game.close()
        raise KeyboardInterrupt  # the checks passed: stop where the game would start

    monkeypatch.setattr(chess_run, "run_async", stop)
    engine = "stockfish" if find_engine("stockfish") else "sunfish"
    assert cli(["chess", "--white", f"{engine}:depth=100"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (
        f"langgraph-speculative chess: warning: --white '{engine}:depth=100': a depth-100 search can take "
        f"minutes to hours per move (depth {chess_run.DEEP_SEARCH[engine]} or less is usual)"
    )
    assert err[1:] == ["langgraph-speculative chess: interrupted"]
