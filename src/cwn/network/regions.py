"""The two axes of the coverage picture: NIS2 sectors and Dutch provinces.

Both are fixed lists (the directive's annexes, the CBS province codes) so that every report
and heat map has the same rows and columns in the same order, whatever the data holds;
anything outside them is collected under UNKNOWN instead of silently disappearing.
"""

from __future__ import annotations

UNKNOWN = "unknown"
UNKNOWN_NAMES: tuple[str, str] = ("onbekend", "unknown")

PROVINCES: dict[str, tuple[str, str]] = {
    "PV20": ("Groningen", "Groningen"),
    "PV21": ("Fryslân", "Friesland"),
    "PV22": ("Drenthe", "Drenthe"),
    "PV23": ("Overijssel", "Overijssel"),
    "PV24": ("Flevoland", "Flevoland"),
    "PV25": ("Gelderland", "Gelderland"),
    "PV26": ("Utrecht", "Utrecht"),
    "PV27": ("Noord-Holland", "North Holland"),
    "PV28": ("Zuid-Holland", "South Holland"),
    "PV29": ("Zeeland", "Zeeland"),
    "PV30": ("Noord-Brabant", "North Brabant"),
    "PV31": ("Limburg", "Limburg"),
}

# Annex I (sectors of high criticality) first, then Annex II (other critical sectors).
NIS2_SECTORS: dict[str, tuple[str, str]] = {
    "energy": ("Energie", "Energy"),
    "transport": ("Vervoer", "Transport"),
    "banking": ("Bankwezen", "Banking"),
    "financial-market": ("Financiële markt", "Financial market infrastructure"),
    "health": ("Gezondheidszorg", "Health"),
    "drinking-water": ("Drinkwater", "Drinking water"),
    "waste-water": ("Afvalwater", "Waste water"),
    "digital-infrastructure": ("Digitale infrastructuur", "Digital infrastructure"),
    "ict-service-management": ("Beheer van ICT-diensten", "ICT service management"),
    "public-administration": ("Overheid", "Public administration"),
    "space": ("Ruimtevaart", "Space"),
    "postal": ("Post- en koeriersdiensten", "Postal and courier services"),
    "waste-management": ("Afvalbeheer", "Waste management"),
    "chemicals": ("Chemische stoffen", "Chemicals"),
    "food": ("Levensmiddelen", "Food"),
    "manufacturing": ("Vervaardiging", "Manufacturing"),
    "digital-providers": ("Digitale aanbieders", "Digital providers"),
    "research": ("Onderzoek", "Research"),
}

_PROVINCE_BY_NAME: dict[str, str] = {
    name.lower(): code for code, names in PROVINCES.items() for name in names
}


def sector_key(sector: str | None) -> str:
    """Subsectors roll up to their sector because agreements and NIS2 duties are per sector;
    a value that names no NIS2 sector becomes UNKNOWN so it still shows up as a row."""
    if sector is None:
        return UNKNOWN
    key = sector.strip().lower().split("/", 1)[0].strip()
    return key if key in NIS2_SECTORS else UNKNOWN


def province_key(province: str | None) -> str:
    """Partners write regions by code or by name (either language); one spelling is needed to
    compare them with the registry, which stores CBS codes."""
    if province is None:
        return UNKNOWN
    text = province.strip()
    if text.upper() in PROVINCES:
        return text.upper()
    return _PROVINCE_BY_NAME.get(text.lower(), UNKNOWN)


def axis_label(key: str, language: str) -> str:
    """Reports go to Dutch and English readers; the axis keys stay language-neutral."""
    names = NIS2_SECTORS.get(key) or PROVINCES.get(key) or UNKNOWN_NAMES
    return names[0] if language == "nl" else names[1]
