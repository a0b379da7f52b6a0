"""The cluster recipes of docs/how-to/hosts-and-clusters.md, run here as local processes: the
Slurm array script's tasks and the Kubernetes Job's pods are started as they would be (their
index in SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX), the workers before the study exists, on
one PostgreSQL study: the exact budget, no configuration run twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from .engine.test_postgres import pg_url  # noqa: F401  (the fixture: a fresh database)
from .helpers import sphere_spec_yaml

pytestmark = pytest.mark.pg


REPO = Path(__file__).resolve().parents[1]


def _k8s_script() -> str:
    job = yaml.safe_load((REPO / "examples" / "cluster" / "k8s_study_job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["bash", "-euo", "pipefail", "-c"]
    assert job["spec"]["completionMode"] == "Indexed"
    return container["args"][0]


@pytest.mark.parametrize("recipe", ["slurm", "k8s"])
def test_a_cluster_recipes_tasks_meet_the_budget_on_one_study(tmp_path, pg_url, recipe):  # noqa: F811
    (tmp_path / "s.yaml").write_text(sphere_spec_yaml("cluster", n_trials=24))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "SPEC": "s.yaml",
        "MOO_STORAGE": pg_url,
    }
    if recipe == "slurm":
        argv = ["bash", str(REPO / "examples" / "cluster" / "slurm_study.sbatch")]
        index = "SLURM_ARRAY_TASK_ID"
    else:
        argv = ["bash", "-euo", "pipefail", "-c", _k8s_script()]
        index = "JOB_COMPLETION_INDEX"

    def start(i: int) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            cwd=tmp_path,
            env={**env, index: str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # the joining tasks first: they wait for the study that task 0 creates
    procs = [start(1), start(2)]
    time.sleep(4.0)
    procs.append(start(0))
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-1500:] for o in outs]
    study = optuna.load_study(study_name="cluster", storage=pg_url)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 24
    configs = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(configs)) == len(configs)
