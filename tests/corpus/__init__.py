"""The corpus: real script-mode projects written by others for SageMaker, run unchanged through the local stack.

`corpus.toml` names each project's upstream files by repository, commit, path and SHA-256; `upstream.py` brings them
in (nothing of theirs is kept in this repository); `data.py` makes each project's channel data; `SOURCES.md` says
where each project comes from and what its SDK call was. `tests/e2e/test_corpus.py` pushes them.
"""
