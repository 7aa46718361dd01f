"""Settings for the whole suite: no network, no user state."""

from __future__ import annotations

import os

# Hugging Face `datasets` is only used to load exported Parquet files: keep it
# off the network and out of the user's cache.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.pop("DATABRIGHT_HOME", None)
os.environ.pop("DATABRIGHT_RPC_URL", None)
