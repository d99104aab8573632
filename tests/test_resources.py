"""Resource safety: a full or refusing disk stops the run cleanly and leaves it resumable; connections and
open files stay bounded however many courses there are."""

from __future__ import annotations

import errno
import os

import pyarrow.fs as pafs
import pytest

from exporter.canvas.errors import RunAborted
from exporter.canvas.refs import account_ref
from exporter.config import ClientConfig, CrawlConfig, Scope, Secret
from exporter.export import export
from exporter.sim import ADMIN_TOKEN, AccountScope, Institution, SimOptions, Simulator, compare, ground_truth
from exporter.store import snapshot as snapshot_module


class _Budget:
    def __init__(self, error: int, after_bytes: int | None = None, on_create_dir: bool = False) -> None:
        self.error, self.left, self.on_create_dir = error, after_bytes, on_create_dir

    def spend(self, n: int) -> None:
        if self.left is not None:
            self.left -= n
            if self.left < 0:
                raise OSError(self.error, os.strerror(self.error))


class _Stream:
    """A writable file that fails like a full disk once the budget is spent."""

    def __init__(self, inner, budget: _Budget) -> None:  # noqa: ANN001
        self.inner, self.budget, self.closed = inner, budget, False

    def write(self, data) -> int:  # noqa: ANN001
        self.budget.spend(len(data))
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.closed = True
        self.inner.close()

    def writable(self) -> bool:
        return True


class FailingDisk(pafs.FileSystemHandler):
    """The local filesystem, except that writes fail with `error` once a byte budget is spent."""

    def __init__(self, budget: _Budget) -> None:
        self.local, self.budget = pafs.LocalFileSystem(), budget

    def get_type_name(self): return "failing-disk"  # noqa: E704, ANN201
    def normalize_path(self, path): return path  # noqa: E704, ANN001, ANN201
    def get_file_info(self, paths): return self.local.get_file_info(paths)  # noqa: E704, ANN001, ANN201
    def get_file_info_selector(self, selector): return self.local.get_file_info(selector)  # noqa: E704, ANN001, ANN201
    def delete_dir(self, path): self.local.delete_dir(path)  # noqa: E704, ANN001, ANN201
    def delete_dir_contents(self, path, missing_dir_ok=False): self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)  # noqa: E501, E704, ANN001, ANN201
    def delete_root_dir_contents(self): raise NotImplementedError  # noqa: E704, ANN201
    def delete_file(self, path): self.local.delete_file(path)  # noqa: E704, ANN001, ANN201
    def move(self, src, dest): self.local.move(src, dest)  # noqa: E704, ANN001, ANN201
    def copy_file(self, src, dest): self.local.copy_file(src, dest)  # noqa: E704, ANN001, ANN201
    def open_input_stream(self, path): return self.local.open_input_stream(path)  # noqa: E704, ANN001, ANN201
    def open_input_file(self, path): return self.local.open_input_file(path)  # noqa: E704, ANN001, ANN201
    def open_append_stream(self, path, metadata): raise NotImplementedError  # noqa: E704, ANN001, ANN201

    def create_dir(self, path, recursive):  # noqa: ANN001, ANN201
        if self.budget.on_create_dir:
            raise OSError(self.budget.error, os.strerror(self.budget.error))
        self.local.create_dir(path, recursive=recursive)

    def open_output_stream(self, path, metadata):  # noqa: ANN001, ANN201
        import pyarrow as pa

        return pa.PythonFile(_Stream(open(path, "wb"), self.budget), mode="w")


@pytest.fixture(scope="module")
def institution() -> Institution:
    return Institution.generate(seed=9, courses=10, large_sections=0)


@pytest.mark.parametrize("budget", [
    _Budget(errno.ENOSPC, after_bytes=60_000),  # the disk fills up mid-crawl
    _Budget(errno.EACCES, on_create_dir=True),  # the output folder refuses us from the start
], ids=["disk-full", "permission-denied"])
async def test_write_failure_commits_nothing_and_resume_finishes(institution, tmp_path, monkeypatch, budget):
    failing = pafs.PyFileSystem(FailingDisk(budget))
    real_open = snapshot_module.open_filesystem
    monkeypatch.setattr(snapshot_module, "open_filesystem", lambda out: (failing, os.path.abspath(out)))
    async with Simulator(institution, SimOptions()) as sim:
        client = ClientConfig(base_url=sim.base_url, token=Secret(ADMIN_TOKEN), per_page=10, concurrency=4)
        cfg = CrawlConfig(client=client, scope=Scope(account=account_ref("self")), out=str(tmp_path),
                          snapshot_id="D1", checkpoint_seconds=0)
        with pytest.raises((RunAborted, snapshot_module.SnapshotError)) as info:
            await export(cfg)
        assert os.strerror(budget.error) in str(info.value) and str(tmp_path) in str(info.value)
        assert not (tmp_path / "_manifests").exists()
        assert not (tmp_path / "sections").exists() and not (tmp_path / "section_users").exists()

        monkeypatch.setattr(snapshot_module, "open_filesystem", real_open)  # space freed / permission fixed
        resumed = CrawlConfig(client=client, scope=cfg.scope, out=cfg.out, snapshot_id="D1",
                              resume=(tmp_path / "_staging" / "D1").exists(), checkpoint_seconds=0)
        result = await export(resumed)
    assert result.status == "complete"
    assert compare(tmp_path, "D1", ground_truth(institution, AccountScope("self"))) == []


async def test_connections_and_open_files_stay_bounded(tmp_path):
    inst = Institution.generate(seed=4, courses=60, large_sections=1, large_section_size=(500, 700))
    peak = {"fds": 0}

    def count_fds(_request) -> None:  # noqa: ANN001
        peak["fds"] = max(peak["fds"], len(os.listdir("/proc/self/fd")))

    async with Simulator(inst, SimOptions(latency_ms=2)) as sim:
        sim.hooks.append(count_fds)
        baseline = len(os.listdir("/proc/self/fd"))
        concurrency = 6
        client = ClientConfig(base_url=sim.base_url, token=Secret(ADMIN_TOKEN), concurrency=concurrency)
        cfg = CrawlConfig(client=client, scope=Scope(account=account_ref("self")), out=str(tmp_path),
                          checkpoint_seconds=0)
        result = await export(cfg)
    assert result.status == "complete"
    # each connection is two sockets here (client and the in-process server's side), plus a part file per
    # table and a few temporaries; nothing grows with the 60 courses and their ~150 sections
    assert peak["fds"] - baseline <= 2 * (concurrency + 4) + 8, peak
