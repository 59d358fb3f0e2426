"""runner.sandbox's Landlock binding and runner.isolation's choice of level (S11)."""

import os
import sys

import pytest

from runner import isolation, sandbox

pytestmark = pytest.mark.skipif(sandbox.abi_version() < 1, reason="no Landlock in this kernel")


def _in_confined_child(confinement, attempt) -> int:
    """Run `attempt` in a child confined as told; its exit status (0: it succeeded)."""
    pid = os.fork()
    if pid == 0:
        try:
            sandbox.confine(confinement)
            attempt()
        except OSError:
            os._exit(13)
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_confined_process_opens_files_in_its_folder_only(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside.txt"
    inside.mkdir()
    outside.write_text("state")
    confinement = {"landlock": True, "read_only": [sys.base_prefix], "read_write": [str(inside)]}
    assert _in_confined_child(confinement, lambda: (inside / "new").write_text("x")) == 0
    assert (inside / "new").read_text() == "x"
    assert _in_confined_child(confinement, lambda: open(outside).read()) == 13
    assert _in_confined_child(confinement, lambda: open(outside, "a").close()) == 13
    assert _in_confined_child(None, lambda: open(outside).read()) == 0  # unconfined: it can


@pytest.mark.skipif(sandbox.abi_version() < 6, reason="signal scoping needs Landlock ABI 6")
def test_a_confined_process_cannot_signal_the_worker(tmp_path):
    worker = os.getpid()
    confinement = {"landlock": True, "read_only": [sys.base_prefix], "read_write": [str(tmp_path)]}
    assert _in_confined_child(confinement, lambda: os.kill(worker, 0)) == 13  # EPERM
    assert _in_confined_child(confinement, lambda: os.kill(os.getpid(), 0)) == 0  # itself: yes
    assert _in_confined_child(None, lambda: os.kill(worker, 0)) == 0  # unconfined: it can


def test_no_rule_encloses_the_var_dir_or_the_work_root(tmp_path):
    var, work = tmp_path / "var", tmp_path / "work"
    workdir = work / "run" / "step"
    found = isolation.Isolation("landlock", 7, protected=(str(var), str(work)))
    rules = isolation.confinement(found, workdir, sys.executable, [])
    for folder in rules["read_only"]:
        real = os.path.realpath(folder)
        assert os.path.commonpath([real, str(var)]) != real
        assert os.path.commonpath([real, str(work)]) != real
    assert rules["read_write"][0] == str(workdir)


def test_forcing_the_level_off_says_so_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv(isolation.ISOLATION_VAR, "none")
    found = isolation.detect(sys.executable, tmp_path, tmp_path)
    assert found.level == "none"
    assert "NOT isolated" in found.describe()
    assert isolation.confinement(found, tmp_path / "a" / "b", sys.executable, []) is None


def test_a_work_root_the_step_user_cannot_reach_is_named(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the step user is tried by a worker running as root")
    closed = tmp_path / "closed"
    (closed / "work").mkdir(parents=True)
    closed.chmod(0o700)
    found = isolation.detect(sys.executable, closed / "work", tmp_path)
    assert found.level == "landlock"
    assert "cannot reach" in found.describe() and "chmod o+x" in found.describe()
