from kfp import dsl
from kfp.dsl import Artifact, Dataset, Markdown, Metrics, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def validate_data(data: str, start: str, end: str, min_task_positives: int, tables: Output[Dataset],
                  report: Output[Markdown], data_docs: Output[Artifact], checks: Output[Metrics]):
    """Snapshot the window of the raw tables and check it with Great Expectations; fails the run
    (before training) when the data breaks the contract."""
    from pathlib import Path

    from grec import settings
    from grec.pipeline import steps

    result = steps.validate_window(Path(data or settings.data_dir()), start, end, Path(tables.path),
                                   Path(data_docs.path), min_task_positives)
    Path(report.path).write_text(steps.validation_markdown(result))
    for name, table in result.tables.items():
        tables.metadata[f"rows.{name}"] = table["rows"]
        checks.log_metric(f"{name}.expectations", table["expectations"])
    tables.metadata.update({"source": data or str(settings.data_dir()), "start": start, "end": end})
    for what, left in result.left_out.items():  # said, not dropped: also in the report above
        tables.metadata[f"left_out.{what}"] = left["rows"]
