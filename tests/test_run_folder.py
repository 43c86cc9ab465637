"""Run folders (issue 12, part 4): one writer at a time (RUN/.lock), runs stopped before their first checkpoint
can be started again, and unreadable run files are one-line errors."""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.training import checkpoint
from ganforge.training.trainer import Trainer

# 2 steps, a checkpoint after each: step-000001 and step-000002
ARGS = ["--steps", "2", "--precision", "fp32", "--quiet", "resolution=8", "batch_size=8", "g_width=8",
        "d_width=8", "num_samples=8", "sample_every=2", "checkpoint_every=1", "log_every=1"]
SMOKE = dict(progress=False, steps=2, resolution=8, batch_size=8, g_width=8, d_width=8, num_samples=8,
             sample_every=2, checkpoint_every=1, log_every=1, precision="fp32")


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "dcgan", "--out", str(run), *ARGS]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of a 2-step dcgan run trained with ARGS."""
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def steps_logged(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- item 2: the lock -------------------------------------------------------------------------------------------
# the holder keeps the lock until the test closes its stdin (or kills it): no timing involved
HOLD = "import sys\nfrom ganforge.training.lock import hold\nwith hold(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    sys.stdin.read()\n"


def test_a_run_folder_locked_by_a_live_process_refuses_train_and_resume(run, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = files(run)
        for argv in (["train", "dcgan", "--out", run, *ARGS], ["resume", run, "--steps", "3", "--quiet"]):
            code, _, err = cli(capsys, *argv)
            assert code == 2 and err.count("\n") == 1, err
            assert f"in use by pid {holder.pid} on host {socket.gethostname()} (started 20" in err
            assert "wait for that run to finish or stop it" in err
        assert files(run) == before            # the holder's folder is untouched
    finally:
        holder.kill()
        holder.wait()
    # killed, its lock file stays behind, but the kernel dropped its lock: the next resume takes it over
    assert json.loads((run / ".lock").read_text())["pid"] == holder.pid
    code, _, err = cli(capsys, "resume", run, "--steps", "3", "--quiet")
    assert code == 0 and f"taking over the stale lock of pid {holder.pid}" in err
    assert checkpoint.latest(run).name == "step-000003" and not (run / ".lock").exists()


def test_train_holds_the_lock_for_its_whole_session_and_releases_it_on_ctrl_c(tmp_path, monkeypatch):
    out, seen = tmp_path / "r", {}

    def fit(self, stop_at=None):               # what a second command sees while this run trains
        seen["holder"] = json.loads((self.run_dir / ".lock").read_text())
        for other in (lambda: ganforge.resume(out, progress=False), lambda: ganforge.train("dcgan", out=out, **SMOKE)):
            with pytest.raises(GanforgeError, match=f"in use by pid {os.getpid()}"):
                other()
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "fit", fit)
    with pytest.raises(KeyboardInterrupt):
        ganforge.train("dcgan", out=out, **SMOKE)
    assert seen["holder"]["pid"] == os.getpid() and seen["holder"]["host"] == socket.gethostname()
    assert not (out / ".lock").exists()
    monkeypatch.undo()
    assert ganforge.train("dcgan", out=out, **SMOKE)["step"] == 2   # nothing holds it any more


def test_a_stale_lock_is_taken_over_and_a_foreign_hosts_lock_is_not(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "r"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    code, _, err = cli(capsys, "train", "dcgan", "--out", out, *ARGS)
    assert code == 0, err
    assert f"taking over the stale lock of pid {dead.pid} on host {socket.gethostname()}" in err
    assert not (out / ".lock").exists() and checkpoint.latest(out).name == "step-000002"
    # a lock from another host cannot be checked from here: refused, naming the file to delete
    (out / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "x"}))
    before = files(out)
    code, _, err = cli(capsys, "resume", out, "--steps", "3", "--quiet")
    assert code == 2 and "pid 1 on host elsewhere.example" in err and f"delete {out / '.lock'}" in err
    assert files(out) == before


def test_a_train_that_fails_before_writing_leaves_no_folder_behind(tmp_path, capsys, monkeypatch):
    def bad_recipe(self, *a, **k):             # e.g. a recipe error when the nets are built
        raise GanforgeError("bad recipe")
    monkeypatch.setattr(Trainer, "__init__", bad_recipe)
    code, _, err = cli(capsys, "train", "dcgan", "--out", tmp_path / "a" / "b", *ARGS)
    assert code == 2 and "bad recipe" in err
    assert list(tmp_path.iterdir()) == []      # the folders the lock created are gone again


# -- item 3: a run stopped before its first checkpoint -----------------------------------------------------------
def _killed_at_first_checkpoint(out, monkeypatch):
    def killed(*a, **k):                       # the process dies while it writes its first checkpoint
        raise RuntimeError("killed")
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "save", killed)
        with pytest.raises(RuntimeError, match="killed"):
            main(["train", "dcgan", "--out", str(out), *ARGS])
    assert (out / "config.json").is_file() and steps_logged(out) == [1] and not checkpoint.exists(out)


@pytest.mark.parametrize("command", ["train", "resume"])
def test_a_run_stopped_before_its_first_checkpoint_starts_again_from_step_0(tmp_path, monkeypatch, capsys, command):
    out = tmp_path / "r"
    _killed_at_first_checkpoint(out, monkeypatch)
    (out / "samples").mkdir()
    (out / "samples" / "step-000009.png").write_bytes(b"from the stopped run")
    argv = ["train", "dcgan", "--out", out, *ARGS] if command == "train" else ["resume", out, "--quiet"]
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    assert "no checkpoint" in err and "starting it again from step 0" in err
    assert steps_logged(out) == [1, 2]         # the stopped run's row is gone, not repeated
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-000002.png"]
    assert checkpoint.latest(out).name == "step-000002"
    # with a checkpoint it is a run to resume again, and a different config is still another run
    code, _, err = cli(capsys, "train", "dcgan", "--out", out, *ARGS)
    assert code == 2 and "already holds this run" in err
    code, _, err = cli(capsys, "train", "dcgan", "--out", out, *ARGS, "g_lr=0.001")
    assert code == 2 and "different run" in err and "g_lr" in err


def test_a_stopped_run_with_another_config_is_still_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    _killed_at_first_checkpoint(out, monkeypatch)
    before = files(out)
    code, _, err = cli(capsys, "train", "dcgan", "--out", out, *ARGS, "g_lr=0.001")
    assert code == 2 and "different run" in err and files(out) == before


def test_a_run_written_before_a_config_key_existed_is_still_this_run(run, capsys):
    cfg = json.loads((run / "config.json").read_text())
    del cfg["config"]["keep_checkpoints"]       # as config.json files written before keep_checkpoints are
    (run / "config.json").write_text(json.dumps(cfg))
    code, _, err = cli(capsys, "train", "dcgan", "--out", run, *ARGS)
    assert code == 2 and "already holds this run" in err, err


# -- item 7: files that are not what they claim to be -----------------------------------------------------------
@pytest.mark.parametrize("payload", ["object", "garbage"])
def test_a_state_file_that_is_not_a_tensor_file_is_refused_without_suggesting_unsafe_loading(run, capsys, payload):
    state = run / "checkpoints" / "step-000002" / "state.pt"
    if payload == "object":
        torch.save(argparse.Namespace(lr=1), state)    # a pickle of an arbitrary object
    else:
        state.write_bytes(b"\x80\x04not a pickle at all")
    code, _, err = cli(capsys, "resume", run, "--steps", "3", "--quiet")
    assert code == 2 and err.count("\n") == 1, err
    assert "is not a ganforge checkpoint file" in err and "weights_only" not in err
    assert "point checkpoints/latest at an earlier step folder (kept: step-000001)" in err
    (run / "checkpoints" / "latest").write_text("step-000001\n")     # doing as told recovers
    assert cli(capsys, "resume", run, "--steps", "3", "--quiet")[0] == 0


def _lacks(key):
    def edit(run):
        cfg = json.loads((run / "config.json").read_text())
        del cfg[key]
        (run / "config.json").write_text(json.dumps(cfg))
    return edit


@pytest.mark.parametrize("edit,msg", [
    (lambda r: (r / "checkpoints" / "latest").write_bytes(b"\xff\xfestep-000002\n"),
     "checkpoints/latest in .* does not hold a checkpoint folder name; point checkpoints/latest at an earlier "
     r"step folder \(kept: step-000002, step-000001\)"),
    (lambda r: (r / "checkpoints" / "step-000002" / "meta.json").write_bytes(b'{"recipe": "\xff"}'),
     "step-000002' is unreadable or corrupt.*kept: step-000001"),
    (lambda r: (r / "config.json").write_bytes(b'{"recipe": "dcgan\xff"}'), "config.json' is corrupt.*UnicodeDecode"),
    (_lacks("data_info"), "config.json' lacks data_info"),
    (_lacks("recipe"), "config.json' lacks recipe"),
], ids=["latest-bytes", "meta-bytes", "config-bytes", "no-data-info", "no-recipe"])
def test_undecodable_or_incomplete_run_files_are_one_line_errors(run, capsys, edit, msg):
    import re
    edit(run)
    for argv in (["resume", run, "--steps", "3", "--quiet"], ["sample", run, "-n", "4"]):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert re.search(msg, err), err
