"""The registry JSON format (docs/registry-format.md): strict pydantic models.

Every value is normalised on the way in (CIDRs canonical, domains lowercase IDNA, ASNs as
integers), so the importer and exporter only ever see canonical data. A validation error
names the organisation id and the field (`organisation 'acme': kvk: ...`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cwn.registry.netaddr import parse_cidr

KVK_RE = re.compile(r"^\d{8}$")
MUNICIPALITY_RE = re.compile(r"^GM\d{4}$")
PROVINCES = frozenset(f"PV{n}" for n in range(20, 32))
SBI_SECTIONS = frozenset("ABCDEFGHIJKLMNOPQRSTUV")
LANGUAGES = ("nl", "en")
SIZES = ("micro", "small", "medium", "large")
SECTOR_PART = r"[a-z0-9](?:[a-z0-9 _.&-]*[a-z0-9])?"
SECTOR_RE = re.compile(rf"^{SECTOR_PART}(?:/{SECTOR_PART})?$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
ORG_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
ASN_MAX = 4_294_967_295


class RegistryFormatError(ValueError):
    """A registry file that cannot be imported; `errors` has one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        first = errors[0] if errors else "invalid registry file"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


def normalise_domain(value: str) -> str:
    """Lowercase, IDNA (punycode), no trailing dot; raises ValueError on a bad name."""
    v = value.strip().rstrip(".").lower()
    if not v or "." not in v:
        raise ValueError(f"{value!r} is not a domain name (needs at least two labels)")
    if "://" in v or "/" in v or "@" in v or " " in v:
        raise ValueError(f"{value!r} is not a domain name (give just the name, e.g. acme.nl)")
    try:
        v = v.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{value!r} is not a valid (IDNA) domain name: {exc}") from None
    if len(v) > 253 or not all(LABEL_RE.match(label) for label in v.split(".")):
        raise ValueError(f"{value!r} is not a valid domain name")
    return v


def parse_asn(value: int | str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an AS number")
    if isinstance(value, str):
        text = value.strip().upper().removeprefix("AS")
        if not text.isdigit():
            raise ValueError(f"{value!r} is not an AS number (use 64500 or 'AS64500')")
        value = int(text)
    if not 1 <= value <= ASN_MAX:
        raise ValueError(f"AS number {value} out of range 1..{ASN_MAX}")
    return value


class AssetIn(BaseModel):
    """One asset; `value` is canonical after validation (int for asn, text otherwise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["cidr", "asn", "domain"]
    value: int | str

    @model_validator(mode="after")
    def _normalise(self) -> AssetIn:
        if self.type == "cidr":
            if not isinstance(self.value, str):
                raise ValueError(f"cidr value must be text, got {self.value!r}")
            object.__setattr__(self, "value", parse_cidr(self.value).text)
        elif self.type == "asn":
            object.__setattr__(self, "value", parse_asn(self.value))
        else:
            if not isinstance(self.value, str):
                raise ValueError(f"domain value must be text, got {self.value!r}")
            object.__setattr__(self, "value", normalise_domain(self.value))
        return self

    @property
    def db_value(self) -> str:
        """The canonical text stored in `assets.value` (and shown as `matched_asset`)."""
        return f"AS{self.value}" if self.type == "asn" else str(self.value)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str
    role: str = Field(default="security", min_length=1, max_length=32)
    language: Literal["nl", "en"] | None = None
    priority: int = Field(default=100, ge=0, le=1_000_000)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        v = v.strip()
        if len(v) > 320 or not EMAIL_RE.match(v):
            raise ValueError(f"{v!r} is not an e-mail address")
        local, _, domain = v.rpartition("@")
        return f"{local}@{domain.lower()}"


class OrganizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str = Field(min_length=1, max_length=512)
    kvk: str | None = None
    sector: str | None = None
    sbi: str | None = None
    municipality: str | None = None
    province: str | None = None
    language: Literal["nl", "en"] = "nl"
    size: Literal["micro", "small", "medium", "large"] | None = None
    maturity: int | None = Field(default=None, ge=0, le=5)
    assets: list[AssetIn] = Field(default_factory=list)
    contacts: list[ContactIn] = Field(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_org(cls, data: Any, handler: Any) -> OrganizationIn:
        """Prefix every error with the organisation id, so operators find it in big files."""
        try:
            return handler(data)
        except ValidationError as exc:
            org = data.get("id") if isinstance(data, dict) else None
            raise PydanticCustomError(
                "organisation", "{detail}",
                {"detail": f"organisation {org!r}: " + "; ".join(_lines(exc))},
            ) from None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ORG_ID_RE.match(v):
            raise ValueError(f"{v!r}: use 1-128 letters, digits and . _ : @ - (no spaces)")
        return v

    @field_validator("kvk", mode="before")
    @classmethod
    def _kvk(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, str):
            raise ValueError(f"{v!r} must be a string of 8 digits (quote it: leading zeros "
                             "matter)")
        if not KVK_RE.match(v):
            raise ValueError(f"{v!r} must be exactly 8 digits")
        return v

    @field_validator("sector")
    @classmethod
    def _sector(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().lower()
        if not SECTOR_RE.match(v):
            raise ValueError(f"{v!r} must be 'sector' or 'sector/subsector'")
        return v

    @field_validator("sbi")
    @classmethod
    def _sbi(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().upper()
        if v not in SBI_SECTIONS:
            raise ValueError(f"{v!r} must be an SBI section letter A-V")
        return v

    @field_validator("municipality")
    @classmethod
    def _municipality(cls, v: str | None) -> str | None:
        if v is not None and not MUNICIPALITY_RE.match(v):
            raise ValueError(f"{v!r} must be a CBS municipality code GM + 4 digits (GM0363)")
        return v

    @field_validator("province")
    @classmethod
    def _province(cls, v: str | None) -> str | None:
        if v is not None and v not in PROVINCES:
            raise ValueError(f"{v!r} must be a CBS province code PV20..PV31")
        return v

    @model_validator(mode="after")
    def _no_duplicates(self) -> OrganizationIn:
        seen: set[tuple[str, int | str]] = set()
        for a in self.assets:
            if (a.type, a.value) in seen:
                raise ValueError(f"assets: duplicate {a.type} {a.value}")
            seen.add((a.type, a.value))
        emails: set[str] = set()
        for c in self.contacts:
            if c.email.lower() in emails:
                raise ValueError(f"contacts: duplicate e-mail {c.email}")
            emails.add(c.email.lower())
        return self

    @property
    def sector_parts(self) -> tuple[str | None, str | None]:
        if not self.sector:
            return None, None
        sector, _, sub = self.sector.partition("/")
        return sector, sub or None


class RegistryDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organizations: list[OrganizationIn] = Field(default_factory=list)
    partners: list[dict[str, Any]] = Field(default_factory=list)
    """Intermediaries and their agreements; validated by `cwn.registry.partners`."""

    @model_validator(mode="after")
    def _unique_ids(self) -> RegistryDocument:
        seen: set[str] = set()
        for org in self.organizations:
            if org.id in seen:
                raise ValueError(f"organisation {org.id!r}: id: appears more than once")
            seen.add(org.id)
        return self

    def canonical(self) -> dict[str, Any]:
        """The document as the exporter writes it: canonical values, defaults explicit,
        None fields left out, organisations by id, assets and contacts sorted."""
        orgs = []
        for org in sorted(self.organizations, key=lambda o: o.id):
            d = org.model_dump(exclude_none=True, exclude={"assets", "contacts"})
            d["assets"] = sorted(
                (a.model_dump() for a in org.assets), key=lambda a: (a["type"], str(a["value"])))
            d["contacts"] = sorted(
                (c.model_dump(exclude_none=True) for c in org.contacts),
                key=lambda c: (c["priority"], c["email"]))
            orgs.append(d)
        return {"organizations": orgs}


def _lines(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("function-after",))
        msg = err["msg"].removeprefix("Value error, ")
        named = msg.startswith("organisation '")  # already names the organisation
        out.append(f"{loc}: {msg}" if loc and not named else msg)
    return out


def parse_document(data: Any) -> RegistryDocument:
    """Validate a decoded JSON document; raises RegistryFormatError with readable lines."""
    try:
        doc = RegistryDocument.model_validate(data)
        if doc.partners:
            from cwn.registry.partners import PartnersDocument

            PartnersDocument.model_validate({"partners": doc.partners})
        return doc
    except ValidationError as exc:
        raise RegistryFormatError(_lines(exc)) from None


def read_document(path: Path) -> RegistryDocument:
    """Read and validate a registry JSON file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryFormatError([f"cannot read: {exc.strerror or exc}"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryFormatError([f"not valid JSON: {exc}"]) from None
    return parse_document(data)
