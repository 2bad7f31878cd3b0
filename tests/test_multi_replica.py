"""Several devices: the train stages (from scratch with BatchNorm, resumed after a kill, retrained on train+val; frozen
transfer on cached features; fine-tuned transfer), evaluate and export with a MirroredStrategy of two logical CPU
devices, as several GPUs would run them. Keras 3.15 fails there with steps_per_execution > 1, so the train stage
must pick 1 (the default `auto` picks up to 16); transfer models, whose replicas fail to agree on their trainable
variables in TF 2.21, train on one device."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT, make_folder_tree

SCRIPT = textwrap.dedent("""
    import sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from imageclf.train import checkpoints, fit

    fit.distribution = lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    import stages.evaluate, stages.evaluate_transfer, stages.export, stages.features, stages.train
    import stages.train_transfer

    def run(stage, *args):
        sys.argv = [stage.__name__, *args]
        stage.main.__wrapped__()

    real = checkpoints.Checkpoints.on_epoch_end

    def killed_after_first_epoch(self, epoch, logs=None):
        real(self, epoch, logs)
        raise KeyboardInterrupt("killed")

    checkpoints.Checkpoints.on_epoch_end = killed_after_first_epoch
    try:
        run(stages.train, "bn")
    except KeyboardInterrupt:
        print("interrupted after epoch 1")
    checkpoints.Checkpoints.on_epoch_end = real
    run(stages.train, "bn")  # resumes
    run(stages.features)
    run(stages.train_transfer, "frozen")
    run(stages.train_transfer, "tuned")
    for stage, name in ((stages.evaluate, "bn"), (stages.evaluate_transfer, "frozen"),
                        (stages.evaluate_transfer, "tuned")):
        run(stage, name)
    run(stages.export)
""")


def test_two_replicas_train_resume_evaluate_and_export(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 12, "b": 12, "c": 12})
    p = project.params
    p["data"].update(source="folder", path=str(root))
    p["split"]["fractions"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    p["prepare"]["image_size"] = 32
    p["train_defaults"].update(epochs=3, min_steps=0, batch_size=4)  # 5 steps an epoch: auto would pick 5
    p["models"] = {"scratch": ["bn"], "transfer": ["frozen", "tuned"]}
    p["features"] = {"lite0": {"backbone": "efficientnet_lite0", "weights": "imagenet", "input_size": 32,
                               "pooling": "avg"}}
    p["train"] = {"bn": {"family": "cnn_bn", "filters": [4, 8], "dense": [8], "retrain_full_epochs": 1},
                  "frozen": {"family": "transfer", "mode": "frozen", "features": "lite0", "dense": [8]},
                  "tuned": {"family": "transfer", "backbone": "efficientnet_lite0", "weights": "imagenet",
                            "mode": "finetune", "input_size": 32, "finetune_top_n": 3, "head_epochs": 1,
                            "dense": [8], "epochs": 2}}
    p["evaluate"]["split"] = "test"
    p["export"].update(formats=["onnx"], parity_images=9, latency_runs=2)
    project.run("download", "split", "prepare")
    # oneDNN off: on AVX-512 CPUs its BatchNorm rewrite fails on the empty per-replica batch that the last validation
    # batch of 1 image leaves replica 1 ("Incompatible shapes: [8] vs. [0,16,16,4]", TF 2.21); oneDNN is CPU-only,
    # so the logical devices then stand in for GPUs more faithfully
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=project.path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
                               "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "train bn: devices CPU (2 cores); MirroredStrategy with 2 replica(s)" in log
    for name in ("frozen", "tuned"):  # transfer models train on one device: see imageclf/train/fit.py
        assert f"train {name}: devices CPU (2 cores); _DefaultDistributionStrategy with 1 replica(s)" in log
    bn = [line for line in log.splitlines() if line.startswith("train bn: batch")]
    assert bn and all("; 1 steps per execution (several replicas" in line for line in bn)  # auto would pick 5
    assert "interrupted after epoch 1" in log and "train bn: resuming after epoch 1" in log
    assert "retrained on train+val" in log and "fine-tuning the top 3 backbone layers" in log
    assert (project.path / "export/model.onnx").is_file()  # export.formats [onnx]: that format only
    assert not (project.path / "export/saved_model").exists() and not (project.path / "export/model.tflite").exists()
    facts = json.loads((project.path / "reports/export/metrics.json").read_text())
    assert [k for k, v in facts.items() if isinstance(v, dict)] == ["keras", "onnx"]  # the reference and onnx
