"""A local run told in one line per step: what kfp's local runner prints goes to the log file, the
terminal gets each step's status, time and key figures, and a failed step its last lines."""

import logging
import sys

import pytest

from grec.pipeline.progress import duration, key_figures, quiet_run

CYAN, GREEN, RED, RESET = "\033[96m", "\033[92m", "\033[91m", "\033[0m"


def kfp_task(name: str, streamed: list[str], status: str = "SUCCESS", outputs: list[str] | None = None) -> None:
    """What kfp's task dispatcher writes for one task (its log records through a handler on
    sys.stdout, the task's own lines through print), colours and all."""
    log = logging.getLogger("kfp-like")
    log.handlers[:] = [logging.StreamHandler(sys.stdout)]
    log.setLevel(logging.INFO)
    log.info(f"Executing task {CYAN}{name!r}{RESET}")
    log.info("Streamed logs:\n")
    for line in streamed:
        print(f"    {line}")
    colour = GREEN if status == "SUCCESS" else RED
    log.info(f"Task {CYAN}{name!r}{RESET} finished with status {colour}{status}{RESET}")
    if status != "SUCCESS":
        raise RuntimeError(f"Task {CYAN}{name!r}{RESET} finished with status {colour}{status}{RESET}")
    log.info("\n".join([f"Task {CYAN}{name!r}{RESET} outputs:", *(outputs or [])]) if outputs
             else f"Task {CYAN}{name!r}{RESET} has no outputs")
    print("-" * 80)


def test_each_step_is_one_line_and_everything_is_in_the_log(tmp_path):
    said = []
    log = tmp_path / "logs" / "training.log"
    noise = [f"Epoch 1: {i}% |#####     | {i}/100 [00:01<00:02]" for i in range(300)]
    with quiet_run(log, said.append) as steps:
        kfp_task("validate-data", noise[:150])
        kfp_task("train-model", noise[150:], outputs=[
            "    metrics: Metrics( name='metrics',",
            "                      uri='/state/pipelines/run/train-model/metrics',",
            "                      metadata={'test_auc.AAL+CTR': 0.7, 'test_mean_auc': 0.761234, 'epochs': 6, 'test_mean_ap': 0.3012} )",
            "    model: Model( name='model',",
            "                  uri='/state/pipelines/run/train-model/model',",
            "                  metadata={'arch': 'grec', 'mlflow_run_id': '24a0906a697c41ea992130535166b37c'} )"])
        kfp_task("evaluate-gate", ["gate: 12 tasks judged"], outputs=["    Output: 'promote'"])
        print("a warning from a library, straight to stderr", file=sys.stderr)
    assert [s["task"] for s in steps.steps] == ["validate-data", "train-model", "evaluate-gate"]
    assert len(said) == 3 and all(line.split()[0] == "ok" for line in said)
    assert said[1].split()[1] == "train-model" and said[1].endswith("arch=grec; test_mean_auc=0.7612; test_mean_ap=0.3012; test_auc.AAL+CTR=0.7")
    assert said[2].endswith("Output=promote")
    text = log.read_text()
    assert all(line in text for line in noise) and "a warning from a library" in text
    assert sys.stdout is not steps and sys.stderr is not steps  # both given back


def test_a_failed_step_shows_its_last_lines(tmp_path):
    said = []
    with pytest.raises(RuntimeError, match="validate-data"), quiet_run(tmp_path / "run.log", said.append):
        kfp_task("validate-data", ["checking impressions.parquet", "Traceback (most recent call last):",
                                   "grec.data.schema.SchemaError: impressions.parquet: column 'flow' has nulls"],
                 status="FAILURE")
    assert said[0].split()[:2] == ["FAILURE", "validate-data"]
    assert said[-1].strip() == "grec.data.schema.SchemaError: impressions.parquet: column 'flow' has nulls"


def test_figures_and_durations_read_plainly():
    assert duration(7.2) == "7s" and duration(112) == "1m52s"
    assert key_figures(["    Output: True"]) == "Output=True"
    assert key_figures(["    checks: Metrics( name='checks',", "      uri='x',", "      metadata={'ok': True} )"]) == ""
