"""Shell completion (shtab): the script `imgbuild --print-completion bash` prints, loaded into a
real bash, completes commands, options and their choices from the same parser as the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_with_reader_gone


def _complete(script: Path, line: str) -> list[str]:
    """What bash offers for `line` (the word under the cursor is the last, possibly empty)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    words = line.split(" ")
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={line!r}\nCOMP_POINT=${{#COMP_LINE}}\n"
        '_shtab_imgbuild\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run([bash, "--norc", "-c", program], capture_output=True, text=True, timeout=30, check=True)
    return sorted(result.stdout.split())


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # As a user runs it: the console entry point in a subprocess, from any folder (no project needed).
    out = subprocess.run(
        [sys.executable, "-m", "imgbuild", "--print-completion", "bash"],
        cwd=tmp_path_factory.mktemp("anywhere"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    path = tmp_path_factory.mktemp("completion") / "imgbuild.bash"
    path.write_text(out)
    return path


def test_bash_completes_commands(script: Path) -> None:
    assert _complete(script, "imgbuild ch") == ["check"]
    assert _complete(script, "imgbuild p") == ["plan", "poll", "prune"]


def test_bash_completes_options_and_their_choices(script: Path) -> None:
    assert _complete(script, "imgbuild check --format ") == ["github", "json", "text"]
    assert "--json" in _complete(script, "imgbuild status --")
    assert _complete(script, "imgbuild --print-completion z") == ["zsh"]


def test_zsh_and_tcsh_scripts_are_printed_too() -> None:
    for shell, marker in (("zsh", "#compdef imgbuild"), ("tcsh", "complete imgbuild")):
        out = subprocess.run(
            [sys.executable, "-m", "imgbuild", "--print-completion", shell],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert marker in out


def test_a_reader_that_goes_away_ends_print_completion_with_141(tmp_path: Path) -> None:
    """`imgbuild --print-completion tcsh | head -2`: the script is printed from inside the parser;
    a closed pipe ends it with 141 and no traceback, as it ends every command."""
    code, err = run_with_reader_gone("--print-completion", "tcsh", cwd=tmp_path)
    assert code == 141, err
    assert err == ""
