"""Sources hand in threat data: `POST /api/v1/submissions`.

A submission goes through exactly what `cwn ingest` does (`IngestPipeline.ingest_paths`):
archived raw, parsed, attributed, stored; so a file is treated the same whether it arrives
by API or on the desk's command line, and the same file twice is one report. The body is
streamed to a file under `$CWN_HOME/incoming` with a size cap before anything parses it, so
an oversized upload costs neither memory nor more disk than the cap.

A source token's `source` name is recorded as the feed name. Each submission is kept per
submitter (`submissions`), which is what `GET /submissions/{sha256}` answers from: a source
sees its own submissions only.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import AsyncGenerator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from cwn.access.errors import AccessError
from cwn.db.base import utcnow
from cwn.db.models import Report
from cwn.db.models_web import Submission
from cwn.ingest.pipeline import FileOutcome
from cwn.web.deps import ApiCaller, Submitter
from cwn.wiring import Services

log = logging.getLogger("cwn.web.submit")

router = APIRouter(tags=["submissions"])

MULTIPART = "multipart/form-data"
JSON = "application/json"
_MULTIPART_SLACK = 64 * 1024
"""Room for the multipart envelope (boundaries, part headers) around a file of the cap."""
_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class SubmissionOut(BaseModel):
    """What became of a submitted file."""

    sha256: str | None = Field(description="SHA-256 of the file as received.")
    status: Literal["ingested", "duplicate", "unusable"] = Field(
        description="ingested: new and processed; duplicate: this exact file came before "
        "(nothing changed); unusable: the file could not be parsed (see `error`).")
    duplicate: bool
    file_name: str
    feed: str | None = Field(description="Feed name recorded with the events.")
    parser: str | None = Field(default=None, description="shadowserver | intelmq | …")
    report_type: str | None = None
    rows: int = Field(default=0, description="Data rows or lines read, good and bad.")
    events: int = 0
    quarantined: int = Field(default=0, description="Rows that could not become events.")
    attributed: int = Field(default=0, description="Events an owner was found for.")
    error: str | None = None
    received_at: datetime | None = Field(default=None, description="When the report was "
                                         "first ingested (a duplicate keeps the first time).")
    submitted_at: datetime


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            MULTIPART: {
                "schema": {"type": "object", "required": ["file"], "properties": {
                    "file": {"type": "string", "format": "binary", "description":
                             "A report file: Shadowserver CSV (the delivery file name "
                             "carries the report type, or pass `report_type`), IntelMQ "
                             "JSON lines or array, or a STIX 2.1 bundle; gzip and "
                             "single-file zip are opened."}}},
            },
            JSON: {
                "schema": {"oneOf": [
                    {"type": "object", "description": "One IntelMQ event, or a STIX 2.1 "
                     "bundle."},
                    {"type": "array", "items": {"type": "object"},
                     "description": "IntelMQ events, or STIX 2.1 objects."}]},
            },
        },
    },
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or a bad token."},
    403: {"description": "The token lacks the `submit` scope."},
    413: {"description": "Larger than `api_max_upload_mb`."},
    415: {"description": "Neither multipart/form-data nor application/json."},
    422: {"description": "The file cannot be used; `detail` says why in one line."},
}


def _holder(caller: ApiCaller) -> str:
    if caller.source:
        return f"source:{caller.source}"
    if caller.org_id:
        return f"org:{caller.org_id}"
    return f"partner:{caller.partner_id}"


def _safe_name(name: str | None, default: str) -> str:
    """The uploaded file's own name without any path: the Shadowserver parser reads the
    report type and date from it."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE_NAME.sub("_", base).strip("._")[:200]
    return base or default


def _too_large(limit_mb: int) -> HTTPException:
    return HTTPException(413, f"the upload is larger than {limit_mb} MB")


async def _spool(request: Request, dest: Path, cap: int, limit_mb: int) -> int:
    """Write the request body to `dest`, refusing it as soon as it passes `cap` bytes."""
    size = 0
    with dest.open("wb") as fh:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise _too_large(limit_mb)
            fh.write(chunk)
    return size


async def _replay(path: Path) -> AsyncGenerator[bytes, None]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


async def _from_multipart(request: Request, body: Path, work: Path, limit: int,
                          limit_mb: int) -> Path:
    parser = MultiPartParser(request.headers, _replay(body), max_files=1, max_fields=20)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise AccessError("bad_multipart", f"not a readable multipart upload: {exc.message}",
                          422) from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise AccessError("missing_file", "a multipart submission needs the report in a "
                              "file field named 'file'", 422)
        dest = work / _safe_name(upload.filename, "upload")

        def copy() -> int:
            upload.file.seek(0)
            with dest.open("wb") as out:
                shutil.copyfileobj(upload.file, out, _CHUNK)
            return dest.stat().st_size

        if await run_in_threadpool(copy) > limit:
            raise _too_large(limit_mb)
        return dest
    finally:
        await form.close()
        body.unlink(missing_ok=True)


def _check_json(path: Path) -> None:
    """A JSON body must be JSON (an object or a list of objects); the pipeline decides
    whether it is IntelMQ, STIX 2.1 or something it quarantines."""
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise AccessError("bad_json", f"the body is not valid JSON: {exc}", 422) from exc
    if isinstance(doc, list):
        if not doc:
            raise AccessError("empty_submission", "the list of events is empty", 422)
        if not all(isinstance(e, dict) for e in doc):
            raise AccessError("bad_json", "a JSON list must hold event objects", 422)
    elif not isinstance(doc, dict):
        raise AccessError("bad_json", "the body must be a JSON object (an IntelMQ event "
                          "or a STIX 2.1 bundle) or a list of IntelMQ events", 422)


def _ingest(svc: Services, path: Path, caller: ApiCaller,
            report_type: str | None) -> tuple[FileOutcome, Submission, Report | None]:
    """Run the pipeline and record the submission (in a worker thread: parsing is heavy
    and the database calls block)."""
    try:
        [outcome] = svc.pipeline().ingest_paths([path], feed=caller.source,
                                                report_type=report_type).files
    except Exception as exc:  # a parser fault must not become a 500 for the source
        log.exception("submission %s from %s failed in the pipeline", path.name,
                      _holder(caller))
        outcome = FileOutcome(str(path), "unusable",
                              error=f"the file could not be processed ({type(exc).__name__})")
    sub = Submission(sha256=outcome.sha256, holder=_holder(caller), token_id=caller.token_id,
                     file_name=path.name, size=path.stat().st_size, status=outcome.status,
                     error=outcome.error, at=utcnow())
    with svc.sessions() as s:
        s.add(sub)
        s.commit()
        s.refresh(sub)
        s.expunge(sub)
        rep = s.get(Report, outcome.sha256) if outcome.sha256 else None
        if rep is not None:
            s.expunge(rep)
    return outcome, sub, rep


def _out(sub: Submission, rep: Report | None) -> SubmissionOut:
    status: Literal["ingested", "duplicate", "unusable"] = (
        "duplicate" if sub.status == "duplicate"
        else "ingested" if sub.status == "ingested" else "unusable")
    base = SubmissionOut(sha256=sub.sha256, status=status, duplicate=status == "duplicate",
                         file_name=sub.file_name, feed=None, error=sub.error,
                         submitted_at=sub.at)
    if rep is None:
        return base
    return base.model_copy(update={
        "feed": rep.feed_name, "parser": rep.parser, "report_type": rep.report_type,
        "rows": rep.rows, "events": rep.events, "quarantined": rep.quarantined,
        "attributed": rep.attributed, "received_at": rep.received_at})


@router.post("/submissions", status_code=201, response_model=SubmissionOut,
             openapi_extra=_BODY_DOC, responses=_ERRORS,
             summary="Submit a report (file upload or JSON events)")
async def submit(
    request: Request,
    caller: Submitter,
    report_type: Annotated[str | None, Query(
        max_length=128, pattern=r"^[A-Za-z0-9_.-]+$",
        description="Shadowserver report type, when the file name does not say it.")] = None,
) -> SubmissionOut:
    """Hand in one report as a multipart file upload (field `file`) or as a JSON body
    (IntelMQ events, one object or a list, or a STIX 2.1 bundle). It is processed at once,
    like `cwn ingest`; the answer says what came of it. The same file again is recognised
    (`duplicate: true`) and changes nothing."""
    svc: Services = request.app.state.svc
    settings = svc.settings
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in (MULTIPART, JSON):
        raise HTTPException(415, "send the report as multipart/form-data (field 'file') or "
                            "as application/json")
    limit_mb = settings.api_max_upload_mb
    limit = limit_mb * 1024 * 1024
    cap = limit + (_MULTIPART_SLACK if kind == MULTIPART else 0)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "bad Content-Length header")
        if int(declared) > cap:
            raise _too_large(limit_mb)
    incoming = settings.home / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sub-", dir=incoming))
    try:
        body = work / ("body" if kind == MULTIPART else "submission.json")
        size = await _spool(request, body, cap, limit_mb)
        if size == 0:
            raise AccessError("empty_submission", "the submission is empty", 422)
        if kind == MULTIPART:
            path = await _from_multipart(request, body, work, limit, limit_mb)
        else:
            await run_in_threadpool(_check_json, body)
            path = body
        outcome, sub, rep = await run_in_threadpool(_ingest, svc, path, caller, report_type)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if outcome.status == "unusable":
        raise AccessError("unusable_input", outcome.error or "the file cannot be used", 422)
    return _out(sub, rep)


@router.get("/submissions/{sha256}", response_model=SubmissionOut,
            responses={404: {"description": "No submission of yours with this SHA-256."}},
            summary="What became of one of your submissions")
def submission(
    request: Request,
    caller: Submitter,
    sha256: Annotated[str, PathParam(pattern=r"^[0-9a-fA-F]{64}$",
                                     description="SHA-256 of the submitted file.")],
) -> SubmissionOut:
    """The latest submission of this file by the caller's source (or organisation or
    partner), with the report's current counts (they change when the report is re-parsed)."""
    svc: Services = request.app.state.svc
    with svc.sessions() as s:
        sub = s.scalars(select(Submission)
                        .where(Submission.holder == _holder(caller),
                               Submission.sha256 == sha256.lower())
                        .order_by(Submission.id.desc()).limit(1)).first()
        if sub is None:
            raise HTTPException(404, "no submission of yours with this SHA-256")
        # The latest try may have been a duplicate of an earlier one: report the report.
        rep = s.get(Report, sub.sha256) if sub.sha256 else None
        return _out(sub, rep)
