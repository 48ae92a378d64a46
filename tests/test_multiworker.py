"""Two worker processes on 127.0.0.1 train one model under MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from monet_gan import config, train
    data_dir, run_dir, weights_file = sys.argv[1:4]
    cfg = config.tiny().replace(data_dir=data_dir, strategy="auto", steps_per_epoch=3)
    model = train.train(cfg, run_dir)
    np.savez(weights_file, *[w.numpy() for w in model.photo_to_monet.weights])
""")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_the_same_weights_and_only_the_chief_writes(data_dir, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, "-c", WORKER, str(data_dir), str(tmp_path / f"run{index}"),
                   str(tmp_path / f"weights{index}.npz")]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs

    chief, other = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert len(chief.files) == len(other.files) > 0
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], other[key])

    # The chief (worker 0) wrote the run: checkpoints, samples, metrics and the export.
    run = tmp_path / "run0"
    assert (run / "checkpoints" / "checkpoint").exists()
    assert (run / "images.zip").exists() and (run / "saved_model" / "saved_model.pb").exists()
    assert (run / "metrics.csv").read_text().splitlines()[1].startswith("1,")
    # Worker 1 wrote nothing of its own (its collective checkpoint saves went to a scratch folder).
    assert not (tmp_path / "run1").exists()
