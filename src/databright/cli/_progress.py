"""A rich progress bar for long uploads, fed by the storage builders' progress callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from databright.cli._common import err_console

if TYPE_CHECKING:
    from databright.storage import Progress as ProgressCallback

__all__ = ["FROM_HELP", "item_progress"]

FROM_HELP = ("Read SOURCE as a dataset in this format: imagefolder, cifar, parquet (Hugging Face), "
             "hf-disk (save_to_disk), webdataset; text: text (one per line), opennmt (src/tgt files), jsonl "
             "or text-csv.")


@contextmanager
def item_progress(description: str) -> Iterator[ProgressCallback]:
    """Yield a callback ``(done, total)`` drawing a bar on stderr (nothing when not a terminal)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
