"""Contacts and notification preferences of the token's organisation.

`GET /preferences` shows the organisation-wide row and each contact's own row, both as stored
(`null` = inherit) and as routing applies them; `PUT /preferences` sets the organisation-wide
one. Contacts are listed, added, changed and removed under `/contacts`. Changes need the
`write` scope and are audited under the token's id. Another organisation's contacts do not
exist for a token (404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from cwn.registry import contacts as registry_contacts
from cwn.registry import preferences as registry_prefs
from cwn.registry.contacts import ContactInfo
from cwn.registry.preferences import PrefState
from cwn.web.deps import DB, Reader, Writer, require_org

router = APIRouter(tags=["preferences"])

Role = Literal["security", "abuse", "technical", "management", "privacy", "other"]
Severity = Literal["info", "low", "medium", "high", "critical"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such contact in your organisation"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Already a contact"}}
_REFUSED: dict[int | str, dict[str, Any]] = {401: {"description": "No or bad token"},
            403: {"description": "Not an organisation token, or the scope is missing"},
            422: {"description": "A value is not accepted; `detail` says which"}}


class PrefValues(BaseModel):
    taxonomies: list[str] | None = Field(
        default=None, description="RSIT taxonomies to receive (`classification.taxonomy`); "
        "null: every taxonomy (or, for a contact, the organisation's choice).")
    report_types: list[str] | None = Field(
        default=None, description="Report types to receive; null: every type.")
    min_severity: Severity | None = Field(
        default=None, description="Least severity to be told about; null: `low`.")
    mode: Literal["immediate", "digest"] | None = Field(
        default=None, description="Each notification at once, or a daily digest.")
    language: Literal["nl", "en"] | None = Field(
        default=None, description="Language of the mails; null: the contact's, else the "
        "organisation's.")
    opted_out: bool | None = Field(default=None, description="Receive nothing at all.")
    paused_until: datetime | None = Field(
        default=None, description="Receive nothing until this moment (UTC when no offset).")


class EffectivePrefs(BaseModel):
    taxonomies: list[str] | None = Field(description="null: every taxonomy.")
    report_types: list[str] | None = Field(description="null: every report type.")
    min_severity: str
    mode: str
    language: str
    opted_out: bool
    paused_until: datetime | None


class ScopePrefs(BaseModel):
    stored: PrefValues = Field(description="What is set for this scope; null = inherited.")
    effective: EffectivePrefs = Field(description="What routing applies.")


class ContactOut(BaseModel):
    id: int
    email: str
    role: str
    roles: list[str] = Field(description="Extra roles beyond `role`.")
    language: str | None
    priority: int = Field(description="Lower is told first; higher tiers are fall-backs.")
    enabled: bool
    created_at: datetime
    confirmed_at: datetime | None = Field(description="Last confirmed as still right.")
    reminded_at: datetime | None = Field(description="Last confirmation reminder sent.")


class ContactPrefs(ScopePrefs):
    contact_id: int
    email: str


class PreferencesOut(BaseModel):
    organisation: ScopePrefs
    contacts: list[ContactPrefs]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    role: Role = "security"
    roles: list[Role] = Field(default_factory=list, description="Extra roles.")
    language: Literal["nl", "en"] | None = None
    priority: int = Field(default=100, ge=0, le=1_000_000)
    enabled: bool = True


class ContactPatch(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    role: Role | None = None
    roles: list[Role] | None = None
    language: Literal["nl", "en"] | None = None
    priority: int | None = Field(default=None, ge=0, le=1_000_000)
    enabled: bool | None = None


class PrefsIn(PrefValues):
    """Only the fields sent are changed; `null` resets a field to the default."""

    model_config = ConfigDict(extra="forbid")


class ContactPage(BaseModel):
    items: list[ContactOut]
    page: int
    per_page: int
    total: int


def _contact(c: ContactInfo) -> ContactOut:
    return ContactOut(id=c.id, email=c.email, role=c.role, roles=c.roles, language=c.language,
                      priority=c.priority, enabled=c.enabled, created_at=c.created_at,
                      confirmed_at=c.confirmed_at, reminded_at=c.reminded_at)


def _scope(p: PrefState) -> ScopePrefs:
    e = p.effective
    return ScopePrefs(
        stored=PrefValues(**p.stored),
        effective=EffectivePrefs(
            taxonomies=sorted(e.taxonomies) if e.taxonomies is not None else None,
            report_types=sorted(e.report_types) if e.report_types is not None else None,
            min_severity=e.min_severity, mode=e.mode, language=p.language,
            opted_out=e.opted_out, paused_until=e.paused_until))


def _preferences(s: DB, org_id: str) -> PreferencesOut:
    org = _scope(registry_prefs.org_preferences(s, org_id))
    per_contact = [ContactPrefs(contact_id=cp.contact.id, email=cp.contact.email,
                                **_scope(cp.prefs).model_dump())
                   for cp in registry_prefs.contact_preferences(s, org_id)]
    return PreferencesOut(organisation=org, contacts=per_contact)


@router.get("/preferences", response_model=PreferencesOut, responses=_REFUSED,
            summary="The organisation's and its contacts' notification preferences")
def get_preferences(s: DB, caller: Reader) -> PreferencesOut:
    return _preferences(s, require_org(caller))


@router.put("/preferences", response_model=PreferencesOut, responses=_REFUSED,
            summary="Set the organisation-wide notification preferences")
def put_preferences(s: DB, caller: Writer, body: PrefsIn) -> PreferencesOut:
    org_id = require_org(caller)
    given: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    registry_prefs.set_preferences(s, org_id, None, actor=caller.actor, **given)
    s.commit()
    return _preferences(s, org_id)


@router.get("/contacts", response_model=ContactPage, responses=_REFUSED,
            summary="The organisation's contacts, first-told first")
def list_contacts(s: DB, caller: Reader,
                  page: Annotated[int, Query(ge=1)] = 1,
                  per_page: Annotated[int, Query(ge=1, le=500)] = 50) -> ContactPage:
    everything = registry_contacts.list_contacts(s, require_org(caller))
    start = (page - 1) * per_page
    return ContactPage(items=[_contact(c) for c in everything[start:start + per_page]],
                       page=page, per_page=per_page, total=len(everything))


@router.get("/contacts/{contact_id}", response_model=ContactOut,
            responses={**_REFUSED, **_NOT_FOUND}, summary="One contact")
def get_contact(s: DB, caller: Reader, contact_id: int) -> ContactOut:
    return _contact(registry_contacts.info(s, require_org(caller), contact_id))


@router.post("/contacts", response_model=ContactOut, status_code=201,
             responses={**_REFUSED, **_CONFLICT},
             summary="Add a contact")
def add_contact(s: DB, caller: Writer, body: ContactIn) -> ContactOut:
    c = registry_contacts.add(s, require_org(caller), actor=caller.actor, **body.model_dump())
    s.commit()
    return _contact(c)


@router.patch("/contacts/{contact_id}", response_model=ContactOut,
              responses={**_REFUSED, **_NOT_FOUND, **_CONFLICT},
              summary="Change a contact")
def patch_contact(s: DB, caller: Writer, contact_id: int, body: ContactPatch) -> ContactOut:
    org_id = require_org(caller)
    given = {k: getattr(body, k) for k in body.model_fields_set}
    for k in ("email", "role", "priority", "enabled"):
        if k in given and given[k] is None:
            given.pop(k)  # these cannot be "unset"; null means leave as is
    c = registry_contacts.update(s, org_id, contact_id, actor=caller.actor, **given)
    s.commit()
    return _contact(c)


@router.delete("/contacts/{contact_id}", status_code=204,
               responses={**_REFUSED, **_NOT_FOUND}, summary="Remove a contact")
def delete_contact(s: DB, caller: Writer, contact_id: int) -> Response:
    registry_contacts.remove(s, require_org(caller), contact_id, actor=caller.actor)
    s.commit()
    return Response(status_code=204)
