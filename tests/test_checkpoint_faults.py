"""The checkpoint writer under faults (issue 12, part 4): a full disk is one line and loses nothing, old
checkpoints are pruned, and a crash at any point of a save leaves `latest` (and `best`) naming a complete
checkpoint, which the next save tidies up after."""
import contextlib
import errno
import json
import os
import re
import shutil

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.training import checkpoint

ARGS = ["--precision", "fp32", "--quiet", "resolution=8", "batch_size=8", "g_width=8", "d_width=8",
        "num_samples=8", "sample_every=2", "checkpoint_every=1", "log_every=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step dcgan run (step-000001, step-000002) with a checkpoints/best from step 1."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "dcgan", "--out", str(run), "--steps", "2", *ARGS]) == 0
    w, _, meta = checkpoint.read(run / "checkpoints" / "step-000001", with_state=False)
    checkpoint.save_best(run, 1, {k: v for k, v in w.items() if k.startswith("G.")}, meta)
    return run


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def step_of(path):
    return json.loads((path / "meta.json").read_text())["step"]


def leftovers(run):
    root = run / "checkpoints"
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


# -- item 6: a full disk --------------------------------------------------------------------------------------
def _raise(code):
    def f(*a, **k):
        raise OSError(code, os.strerror(code))
    return f


@pytest.mark.parametrize("where,code", [("torch.save", errno.ENOSPC), ("weights", errno.ENOSPC),
                                        ("meta.json", errno.EDQUOT), ("latest.tmp", errno.ENOSPC)])
def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous_checkpoint(run, monkeypatch, capsys,
                                                                                       where, code):
    before = {p: p.read_bytes() for p in (run / "checkpoints").rglob("*") if p.is_file()}
    if where == "torch.save":
        monkeypatch.setattr(torch, "save", _raise(code))
    else:
        real = checkpoint._write_file
        name = {"weights": "weights.safetensors"}.get(where, where)
        monkeypatch.setattr(checkpoint, "_write_file",
                            lambda path, data: _raise(code)() if path.name == name else real(path, data))
    assert main(["resume", str(run), "--steps", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"no space left for checkpoint step-000003 in {str(run / 'checkpoints')!r} (" in err
    size, unit = re.search(r"\(([\d.]+) (GiB|MiB|KiB|bytes) free; ", err).groups()
    free = float(size) * 2 ** {"GiB": 30, "MiB": 20, "KiB": 10, "bytes": 0}[unit]
    assert abs(free - shutil.disk_usage(run).free) < 0.1 * shutil.disk_usage(run).free + 2**20, err
    assert "checkpoints/latest still names step-000002" in err and f"ganforge resume {run}" in err
    # the temporary folder is gone, the uncommitted one too, and the previous checkpoint is as it was
    assert leftovers(run) == [] and not (run / "checkpoints" / "step-000003").exists()
    assert {p: p.read_bytes() for p in (run / "checkpoints").rglob("*") if p.is_file()} == before
    assert checkpoint.latest(run).name == "step-000002"
    monkeypatch.undo()
    assert main(["resume", str(run), "--steps", "3", "--quiet"]) == 0   # space again: it goes on
    assert checkpoint.latest(run).name == "step-000003"


# -- item 6: pruning ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep,kept", [(None, [3, 4, 5]), (0, [1, 2, 3, 4, 5]), (1, [5])])
def test_keep_checkpoints_prunes_old_step_folders(tmp_path, capsys, keep, kept):
    extra = [] if keep is None else [f"keep_checkpoints={keep}"]
    assert main(["train", "dcgan", "--out", str(tmp_path / "r"), "--steps", "5", *ARGS, *extra]) == 0
    root = tmp_path / "r" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest"] + [f"step-{s:06d}" for s in kept]


def test_keep_checkpoints_must_not_be_negative(capsys):
    assert main(["train", "dcgan", "keep_checkpoints=-1"]) == 2
    assert "'keep_checkpoints' must be >= 0 (0 keeps every checkpoint); got -1" in capsys.readouterr().err


def test_pruning_keeps_best_and_the_folders_of_a_rolled_back_run(run):
    w, state, meta = checkpoint.read(run / "checkpoints" / "step-000002")
    shutil.copytree(run / "checkpoints" / "step-000002", run / "checkpoints" / "step-000009")  # rolled back from
    for step in (3, 4, 5):
        checkpoint.save(run, step, w, state, meta, keep=2)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best", "latest", "step-000004", "step-000005", "step-000009"]
    assert step_of(run / "checkpoints" / "best") == 1 and checkpoint.latest(run).name == "step-000005"


# -- item 8: a crash at every point of a save -----------------------------------------------------------------
class Crash(BaseException):
    """A kill -9 stand-in: no `except` of the writer catches it, so no clean-up runs."""


def _half_written(path, data):          # a write cut short leaves part of the file
    with open(path, "wb") as f:
        f.write(bytes(memoryview(data)[: len(data) // 2]))


def _partly_removed(path, *a, **k):     # an rmtree cut short leaves part of the tree
    files = sorted(p for p in __import__("pathlib").Path(path).rglob("*") if p.is_file())
    if files:
        files[0].unlink()


CRASH_POINTS = [(os, "replace", None), (os, "fsync", None), (os, "mkdir", None), (os, "unlink", None),
                (os, "rmdir", None), (shutil, "rmtree", _partly_removed), (checkpoint, "_write_file", _half_written)]


@contextlib.contextmanager
def crash_at(k):
    """Raise Crash at the k-th filesystem operation (over all of CRASH_POINTS), after its partial effect."""
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        def wrap(fn, partial):
            def op(*a, **kw):
                calls.append(fn.__name__)
                if len(calls) == k:
                    if partial is not None:
                        partial(*a, **kw)
                    raise Crash(f"{fn.__name__} #{k}")
                return fn(*a, **kw)
            return op
        for mod, name, partial in CRASH_POINTS:
            mp.setattr(mod, name, wrap(getattr(mod, name), partial))
        yield calls


def _new_step(run, w, state, meta):
    return checkpoint.save(run, 3, w, state, meta, keep=2)


def _same_step(run, w, state, meta):        # e.g. Ctrl-C right after a periodic checkpoint
    return checkpoint.save(run, 2, w, state, meta, keep=2)


def _best(run, w, state, meta):
    return checkpoint.save_best(run, 3, {k: v for k, v in w.items() if k.startswith("G.")}, meta)


@pytest.mark.parametrize("save,latest_steps,best_steps", [
    (_new_step, {2, 3}, {1}), (_same_step, {2}, {1}), (_best, {2}, {1, 3})], ids=["new-step", "same-step", "best"])
def test_a_crash_at_any_point_of_a_save_leaves_complete_checkpoints(trained, tmp_path, save, latest_steps,
                                                                     best_steps):
    w, state, meta = checkpoint.read(trained / "checkpoints" / "step-000002")
    crashed = 0
    for k in range(1, 200):
        run = tmp_path / f"k{k}"
        shutil.copytree(trained, run)
        try:
            with crash_at(k) as calls:
                save(run, w, state, meta)
        except Crash:
            crashed += 1
        else:
            break                           # k is past the last operation: every point has been tried
        where = f"crash at {calls[-1]} #{k}"
        # readers find a complete checkpoint: the old one or the new one
        ck = checkpoint.latest(run)
        assert step_of(ck) in latest_steps and checkpoint.read(ck)[1]["step"] == 2, where
        assert ganforge.load(run).sample(2).shape == (2, 1, 8, 8), where
        best = run / "checkpoints" / "best"
        assert checkpoint.read(best, with_state=False)[2]["step"] in best_steps, where
        assert ganforge.load(best).sample(2).shape == (2, 1, 8, 8), where
        # the next save succeeds and tidies what the crash left
        save(run, w, state, meta)
        assert leftovers(run) == [], where
        assert step_of(checkpoint.latest(run)) == max(latest_steps), where
        assert step_of(best) == max(best_steps), where
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names == {_new_step: ["best", "latest", "step-000002", "step-000003"],
                         _same_step: ["best", "latest", "step-000001", "step-000002"],
                         _best: ["best", "latest", "step-000001", "step-000002"]}[save], where
        shutil.rmtree(run)
    assert crashed >= 12, crashed           # the sequence really was interrupted at many points


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names an fd's file through /proc (Linux)")
def test_files_and_folders_are_synced_before_they_are_renamed_into_place(run, monkeypatch):
    w, state, meta = checkpoint.read(run / "checkpoints" / "step-000002")
    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(a), str(b))),
                                                     real_replace(a, b))[1])
    checkpoint.save(run, 3, w, state, meta)
    root = str((run / "checkpoints").resolve())
    tmp = f"{root}/.tmp-step-000003"
    folder = events.index(("replace", tmp, f"{root}/step-000003"))
    pointer = events.index(("replace", f"{root}/latest.tmp", f"{root}/latest"))
    synced = lambda a, b: {e[1] for e in events[a:b] if e[0] == "fsync"}   # noqa: E731
    assert {f"{tmp}/weights.safetensors", f"{tmp}/state.pt", f"{tmp}/meta.json", tmp} <= synced(0, folder)
    assert {root, f"{root}/latest.tmp"} <= synced(folder, pointer)     # the rename, then the new pointer
    assert root in synced(pointer, len(events))                        # and the pointer's rename
