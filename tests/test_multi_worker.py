"""Multi-worker training (`strategy="multi_worker"`, `tf.distribute.MultiWorkerMirroredStrategy`),
exercised: two worker processes on 127.0.0.1 run the README's command, each with its TF_CONFIG
and its own copy of a prepared run (as on two machines), beside one ordinary process; one worker
is killed during an epoch and both are started again.

About two minutes on 2 CPU cores; every process is bounded by a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas
from conftest import tiny_config

from helpers.training import train

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300            # per process
LOSS_RTOL = 1e-3           # multi-worker vs one process, same global batch (measured: < 5e-5)


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def tf_config(ports: list[int], index: int) -> str:
    """TF_CONFIG of worker `index` of a cluster of workers on 127.0.0.1 (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


def start_training(run_dir: Path, *options: str, tf_config_value: str | None = None):
    """`python -m helpers train --run RUN_DIR OPTIONS` in its own process (stdout+stderr piped)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if tf_config_value is not None:
        env["TF_CONFIG"] = tf_config_value
    return subprocess.Popen([sys.executable, "-m", "helpers", "train", "--run", str(run_dir), *options],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(processes: list[subprocess.Popen]) -> list[str]:
    """Wait for every process (killing all of them past the timeout); their outputs."""
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return outputs


def wait_for_epochs(run_dir: Path, epochs: int, process: subprocess.Popen) -> None:
    """Until `run_dir/history.csv` lists `epochs` epochs (the backup of the last one is written
    before its row: `BackupAndRestore` comes first among the callbacks)."""
    history = run_dir / "history.csv"
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) > epochs:
            return
        time.sleep(0.2)
    raise AssertionError(f"{run_dir.name} did not finish {epochs} epoch(s): "
                         f"{process.communicate()[0][-3000:] if process.poll() is not None else 'timeout'}")


def test_two_workers_on_loopback_train_like_one_process_and_resume_after_a_kill(sample_dir, tmp_path):
    """The README's commands, on two workers and on one process, 3 epochs each.

    Worker 1 is killed (SIGKILL) after its first epoch, during the second: worker 0 stops with
    an error (its collective ops are aborted when the peer stops sending heartbeats); the same two
    commands started again resume both from their backups and finish. Then: the chief (worker 0)
    has the checkpoints and the bundle, the other worker its own checkpoints (each needs its
    backup to resume) and no bundle; the losses of every epoch equal those of one process with
    the same global batch (`batch_size` 16: 8 per worker). Dropout is off: each worker draws the
    masks of its half of a batch, so with dropout the runs would differ by the masks' noise."""
    config = tiny_config(sample_dir, dropout=0.0, caption_samples=0, epochs=3, encoder_epochs=0)
    prepared = tmp_path / "prepared"
    train.prepare(config, prepared, verbose=0)
    single, chief, worker = tmp_path / "single", tmp_path / "worker0", tmp_path / "worker1"
    for run_dir in (single, chief, worker):
        shutil.copytree(prepared, run_dir)

    ports = free_ports(2)

    def start_workers() -> list[subprocess.Popen]:
        return [start_training(run_dir, "--strategy", "multi_worker", tf_config_value=tf_config(ports, index))
                for index, run_dir in enumerate((chief, worker))]

    alone = start_training(single)
    workers = start_workers()
    wait_for_epochs(worker, 1, workers[1])
    time.sleep(1.0)                                   # into the second epoch
    workers[1].kill()
    first_try = finish(workers)
    assert workers[0].returncode != 0, "worker 0 went on without its peer:\n" + first_try[0][-3000:]

    workers = start_workers()                         # the same commands again: both resume
    outputs = finish([*workers, alone])
    for process, output in zip([*workers, alone], outputs):
        assert process.returncode == 0, output[-3000:]
    assert "the chief saves the bundle" in outputs[1]

    for name in ("best.weights.h5", "last.weights.h5", "state.json"):
        assert (chief / "checkpoints" / name).is_file(), name
        assert (worker / "checkpoints" / name).is_file(), name
    assert (chief / "bundle" / "bundle.json").is_file()
    assert not (worker / "bundle").exists()

    expected = pandas.read_csv(single / "history.csv")
    for run_dir in (chief, worker):
        found = pandas.read_csv(run_dir / "history.csv")
        assert found["epoch"].tolist() == [0, 1, 2], run_dir.name
        for column in ("loss", "caption_loss", "tags_loss", "val_loss"):
            np.testing.assert_allclose(found[column], expected[column], rtol=LOSS_RTOL,
                                       err_msg=f"{run_dir.name} {column}")
