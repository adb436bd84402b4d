"""The composition root: the one place where settings become services.

Everything else receives its collaborators as arguments, so tests and workers can assemble
the same services against another home, database or clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from cwn.archive.events import EventArchive
from cwn.archive.raw import RawArchive
from cwn.config import Settings
from cwn.db.engine import make_engine, session_factory, upgrade
from cwn.db.models import RegistryState
from cwn.ingest.pipeline import IngestPipeline
from cwn.publicdata.store import PublicDataStore

if TYPE_CHECKING:
    from cwn.attribute.index import AssetIndex
    from cwn.attribute.public import PublicAttribution


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    raw: RawArchive
    events: EventArchive
    _index: AssetIndex | None = field(default=None, repr=False)
    _index_version: int | None = field(default=None, repr=False)
    _public: PublicAttribution | None = field(default=None, repr=False)
    _public_version: tuple[tuple[str, int], ...] | None = field(default=None, repr=False)

    def registry_version(self) -> int:
        with self.engine.connect() as conn:
            v = conn.execute(select(RegistryState.version).where(RegistryState.id == 1)).scalar()
        return int(v or 0)

    def index(self) -> AssetIndex:
        """The attribution index, rebuilt when the registry changed since it was built."""
        from cwn.attribute.loader import load_index

        version = self.registry_version()
        if self._index is None or self._index_version != version:
            self._index = load_index(self.engine, self.settings.home / "index")
            self._index_version = version
        return self._index

    def publicdata(self) -> PublicDataStore:
        return PublicDataStore(self.settings.publicdata_dir)

    def public(self) -> PublicAttribution | None:
        """Public-data owner attribution, reloaded when an import changed the data."""
        from cwn.attribute.public import PublicAttribution

        root = self.settings.publicdata_dir
        version = tuple(sorted((str(p), p.stat().st_mtime_ns)
                               for p in root.glob("*/*/meta.json"))) if root.is_dir() else ()
        if version != self._public_version:
            self._public = PublicAttribution.load(self.publicdata()) if version else None
            self._public_version = version
        return self._public

    def pipeline(self) -> IngestPipeline:
        return IngestPipeline(
            self.engine,
            self.raw,
            self.events,
            self.index,
            schema_dir=self.settings.schema_dir,
            default_tlp=self.settings.default_tlp,
            keep_raw=self.settings.keep_raw,
            public=self.public,
        )

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings | None = None, *, migrate: bool = True) -> Services:
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    if migrate:
        upgrade(engine)
    return Services(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        raw=RawArchive(settings.raw_dir),
        events=EventArchive(settings.events_dir),
    )
