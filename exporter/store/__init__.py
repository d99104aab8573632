"""The dataset on disk: part files, snapshot staging and commit, manifest, resume journal."""

from exporter.store.snapshot import Snapshot, SnapshotError, new_snapshot_id

__all__ = ["Snapshot", "SnapshotError", "new_snapshot_id"]
