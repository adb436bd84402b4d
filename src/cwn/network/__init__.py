"""The network's reach: which partners cover which part of the Netherlands, and where only
the central desk reaches organisations itself (the gaps partner recruitment should close)."""

from cwn.network.coverage import CoverageCell, compute_coverage, coverage_table
from cwn.network.heatmap import heatmap_svg
from cwn.network.regions import NIS2_SECTORS, PROVINCES, sector_key

__all__ = [
    "NIS2_SECTORS",
    "PROVINCES",
    "CoverageCell",
    "compute_coverage",
    "coverage_table",
    "heatmap_svg",
    "sector_key",
]
