"""The implementations that ``benchmarks.mlp`` trains, one module per peer.

Every peer module defines:

    DESCRIPTION      one line: what one timed step of this peer does
    missing()        None when the peer can run here, else the reason it cannot (cheap: it
                     must not import the peer's framework, only look for it)
    versions()       {package: version} of what it runs on (called inside the worker)
    make_trainer(workload, data, lr, seed) -> Trainer

A trainer has ``train(steps)`` (run that many SGD steps over the fixed batches, cycling),
``loss()`` (the last step's loss as a float, or None when the peer computes no loss),
``n_params`` and ``dtype`` (a check that every peer trains the same float32 network).

The harness imports exactly one peer module per worker process, so a peer's imports (torch,
scikit-learn) never leak into another peer's measurement.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Peer name -> module, in the order the harness interleaves them (A B C D E, A B C D E, ...).
PEERS: dict[str, str] = {
    "chainrule": "benchmarks.peers.chainrule",
    "chainrule-compiled": "benchmarks.peers.chainrule_compiled",
    "pytorch": "benchmarks.peers.pytorch",
    "jax": "benchmarks.peers.jax_jit",
    "sklearn": "benchmarks.peers.scikit_learn",
    "numpy": "benchmarks.peers.numpy_mlp",
    "floor": "benchmarks.peers.matmul_floor",
}


def load(name: str) -> ModuleType:
    """Import the module of peer ``name`` (a key of ``PEERS``)."""
    return importlib.import_module(PEERS[name])
