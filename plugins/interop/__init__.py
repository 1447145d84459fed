"""Conversions between edgesmith models and other formats (LFM2)."""

from .lfm2 import (  # noqa: F401
    CheckpointError,
    ExportError,
    export_lfm2,
    import_lfm2,
    lfm2_config_to_edge,
    edge_config_to_lfm2,
)
