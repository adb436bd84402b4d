"""Advice library ("handelingsperspectief") per report type, in Dutch and English."""

from cwn.render.advice.library import (
    GENERIC_ID,
    LANGUAGES,
    SEVERITIES,
    TEXT_KEYS,
    Advice,
    AdviceError,
    AdviceLibrary,
    AdviceText,
    default_library,
    load_library,
)

__all__ = [
    "GENERIC_ID",
    "LANGUAGES",
    "SEVERITIES",
    "TEXT_KEYS",
    "Advice",
    "AdviceError",
    "AdviceLibrary",
    "AdviceText",
    "default_library",
    "load_library",
]
