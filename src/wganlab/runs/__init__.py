"""The run folder (runs.folder): every file name a run leaves behind and how each is written."""
