"""Storage backends: a Space's files live in a real bare git repository (:mod:`spaces.storage.gitrepo`)."""

from spaces.storage.gitrepo import Addition, CommitInfo, GitRepo, TreeEntry, blob_oid

__all__ = ["Addition", "CommitInfo", "GitRepo", "TreeEntry", "blob_oid"]
