"""Where a load's submitted tasks run: a Dask cluster when `SMALLCAPS_DASK_ADDRESS` names one,
otherwise a pool of threads in the flow's own process.

Only what the flows submit (`task.map` / `task.submit`) goes through the task runner: the chunks
of bars and of fundamentals. Everything the flow calls directly (holdings, the gate, the load and
derivation on the DuckDB connection, publish, export, report) runs in the flow's process, which
holds the warehouse file: DuckDB lets one process write it, and a connection cannot be sent to
another machine. See docs/operations.md, "Running the fetch on a Dask cluster".

The choice is made when a flow run starts, from the settings of that moment, so the CLI, the demo's
subflows, a deployment run by a worker and a test that sets the variable all follow the same rule.
"""

from __future__ import annotations

from typing import Any, Iterable

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from ground.settings import Settings

THREADS = 4


class PipelineTaskRunner(TaskRunner):
    """Delegates to prefect-dask's DaskTaskRunner (connected to the configured scheduler) or to
    Prefect's ThreadPoolTaskRunner, chosen on entering the flow run."""

    def __init__(self, threads: int = THREADS) -> None:
        super().__init__()
        self.threads = threads
        self.inner: TaskRunner | None = None

    def duplicate(self) -> "PipelineTaskRunner":
        return type(self)(self.threads)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipelineTaskRunner) and other.threads == self.threads

    def __enter__(self) -> "PipelineTaskRunner":
        inner = runner_for(Settings().dask_address, self.threads)
        inner.__enter__()
        try:
            if not isinstance(inner, ThreadPoolTaskRunner):
                connect(inner)
        except BaseException:
            inner.__exit__(None, None, None)
            raise
        self.inner = inner
        return super().__enter__()

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        try:
            if self.inner is not None:
                self.inner.__exit__(exc_type, exc_value, traceback)
        finally:
            self.inner = None
            super().__exit__(exc_type, exc_value, traceback)

    def submit(self, task, parameters: dict[str, Any], wait_for: Iterable | None = None, dependencies=None):
        if self.inner is None:
            raise RuntimeError("The task runner must be started before submitting work.")
        return self.inner.submit(task, parameters, wait_for=wait_for, dependencies=dependencies)

    def cancel_all(self) -> None:
        if self.inner is not None and hasattr(self.inner, "cancel_all"):
            self.inner.cancel_all()


def runner_for(dask_address: str | None, threads: int = THREADS) -> TaskRunner:
    """The runner a flow run uses: Dask at `dask_address` (settings.dask_address), else threads."""
    if not dask_address:
        return ThreadPoolTaskRunner(max_workers=threads)
    # Imported only when asked for: distributed costs about a second to import.
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=dask_address)


def connect(runner) -> None:
    """Reach the scheduler now, at the start of the flow run, so that an unreachable cluster fails
    before the warehouse is locked and anything is fetched, with a message saying what to do."""
    try:
        client = runner.client
    except OSError as exc:
        raise RuntimeError(
            f"could not reach the Dask scheduler at {runner.address} (SMALLCAPS_DASK_ADDRESS): {exc}. "
            "Start one (`dask scheduler`, then `dask worker ADDRESS` on each machine) or unset "
            "SMALLCAPS_DASK_ADDRESS to fetch on the local thread pool"
        ) from exc
    workers = len(client.nthreads())
    if workers:
        runner.logger.info("fetching on the Dask cluster at %s (%s worker(s) now)", runner.address, workers)
    else:
        # A cluster that scales up on demand starts with none; a fixed one has a problem.
        runner.logger.warning(
            "the Dask scheduler at %s has no worker yet: the fetch waits until one joins (`dask worker %s`)",
            runner.address, runner.address,
        )
