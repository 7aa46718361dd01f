"""DataBright: curate machine-learning data together."""

from __future__ import annotations

import importlib.util
import os

__version__ = "0.1.0"

# keccak-256 is on every hot path of the chain (tries, addresses, signatures).
# eth-hash picks pycryptodome first, whose keccak costs ~4 us a call against
# ~0.5 us for the C extension of safe-pysha3: prefer the latter, unless the
# user chose a backend. eth-hash reads this lazily, on its first hash.
if "ETH_HASH_BACKEND" not in os.environ and importlib.util.find_spec("sha3") is not None:
    os.environ["ETH_HASH_BACKEND"] = "pysha3"
