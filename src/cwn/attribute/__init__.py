"""Attribution: match events to the organisation owning their address, domain or AS."""

from cwn.attribute.index import AssetIndex
from cwn.attribute.loader import load_index

__all__ = ["AssetIndex", "load_index"]
