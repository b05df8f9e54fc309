"""Frozen configs and canonical hashes (pure helpers shared by the config, the store and the model layer)."""

from __future__ import annotations

import hashlib
import json
from types import MappingProxyType


def freeze(obj):
    """Deep read-only view of nested dicts/lists (MappingProxyType / tuple)."""
    if isinstance(obj, dict):
        return MappingProxyType({k: freeze(v) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return tuple(freeze(v) for v in obj)
    return obj


def thaw(obj):
    """Plain dict/list copy of a frozen structure (for YAML output and hashing)."""
    if isinstance(obj, (dict, MappingProxyType)):
        return {k: thaw(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [thaw(v) for v in obj]
    return obj


def canonical_hash(obj, n: int = 16) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys), first ``n`` hex chars."""
    s = json.dumps(thaw(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(s.encode()).hexdigest()[:n]
