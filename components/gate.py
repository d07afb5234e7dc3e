from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate_and_gate(training_set: Input[Dataset], challenger: Input[Model], baseline: Input[Model],
                      incumbents: Input[Model], model_name: str, policy: str, comparison: Output[Markdown],
                      gate_report: Output[Markdown], gate: Output[Artifact], metrics: Output[Metrics]) -> str:
    """Per-task test AUC of the challenger beside the baseline network and the per-task incumbents
    (paired bootstrap intervals, what serving each takes), and the promotion gate against the
    registry's champion. Returns the decision: "promote" or "refuse"."""
    import json
    from pathlib import Path

    from grec.pipeline import steps

    others = {baseline.metadata["arch"]: Path(baseline.path), incumbents.metadata["arch"]: Path(incumbents.path)}
    table = steps.compare(Path(training_set.path), {"GRec": Path(challenger.path), **others})
    Path(comparison.path).write_text(steps.comparison_markdown(table, "GRec", list(others)))
    judged = table.attrs.get("mean_over", list(table.index))  # the tasks the comparison's means are over
    for name in others:
        metrics.log_metric(f"auc_vs_{name}.mean_of_ranked_tasks", float((table["GRec"] - table[name])[judged].mean()))
    report = steps.gate(Path(training_set.path), Path(challenger.path), challenger.metadata["mlflow_run_id"], model_name,
                        Path(policy) if policy else None)
    Path(gate_report.path).write_text(report.markdown())
    Path(gate.path).write_text(json.dumps(report.to_dict(), indent=2))
    gate.metadata.update({"decision": report.decision, "failed_tasks": report.failed_tasks()})
    metrics.log_metric("gate_auc.mean_of_judged_tasks", report.mean["challenger_auc"])
    if report.mean["diff"] is not None:
        metrics.log_metric("gate_auc_vs_champion.mean_of_judged_tasks", report.mean["diff"])
    return report.decision
