"""The FastAPI application: recordings in over HTTP, jobs and calls out, every route behind a token.

Routes: `GET /healthz`; `POST /api/v1/calls` (multipart upload → 202 and a job id);
`GET /api/v1/jobs`, `GET /api/v1/jobs/{id}`; `GET /api/v1/calls/{id}`. The OpenAPI document is
served by the app itself (`/openapi.json`), no documentation pages from a CDN. Errors are one
line of plain language in `{"detail": ...}`; an unexpected one is logged and answered with a
one-line 500, never a traceback.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select, text
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline import store
from pipeline.errors import ChurnwatchError
from pipeline.store.jobs import JOB_STATUSES, job_for_external_id
from pipeline.flow.worker import SubmissionError, check_submission, job_view
from pipeline.web import auth, pages
from pipeline.web.uploads import check_suffix, save_upload

log = logging.getLogger("churnwatch.web")

DEFAULT_DATA_DIR = Path("churnwatch-data")
DEFAULT_MAX_UPLOAD_MB = 200


@dataclass(frozen=True)
class WebConfig:
    data_dir: Path = DEFAULT_DATA_DIR  # uploads are kept under <data_dir>/uploads
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20

    @classmethod
    def from_env(cls, settings=None, data_dir: str | Path | None = None, max_upload_mb: int | None = None) -> WebConfig:
        """Options first, then settings (data_dir, max_upload_mb, where they exist), then
        CHURNWATCH_DATA_DIR / CHURNWATCH_MAX_UPLOAD_MB, then the defaults."""
        data = (data_dir or getattr(settings, "data_dir", None) or os.environ.get("CHURNWATCH_DATA_DIR")
                or DEFAULT_DATA_DIR)
        mb = max_upload_mb or getattr(settings, "max_upload_mb", None) or os.environ.get("CHURNWATCH_MAX_UPLOAD_MB")
        try:
            mb = int(mb) if mb else DEFAULT_MAX_UPLOAD_MB
        except ValueError:
            raise ChurnwatchError(f"CHURNWATCH_MAX_UPLOAD_MB must be a whole number of megabytes, got {mb!r}.") \
                from None
        return cls(Path(data).expanduser().absolute(), mb << 20)


def _one_line_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "form"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", "invalid"))
    return "; ".join(parts) or "The request is not valid."


def create_app(settings, engine, *, config: WebConfig | None = None) -> FastAPI:
    """The application over one engine; `config` holds the data folder and the upload limit."""
    config = config or WebConfig.from_env(settings)
    app = FastAPI(title="churnwatch", version="1", docs_url=None, redoc_url=None,
                  description="Call recordings in, churn early warnings out. Every /api route needs a bearer token.")
    app.state.settings, app.state.engine, app.state.config = settings, engine, config
    pages.install(app, config.data_dir)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if pages.is_page(request) and exc.status_code != 405:
            return pages.error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _one_line_validation(exc)}, status_code=422)

    @app.exception_handler(SubmissionError)
    async def _submission(request: Request, exc: SubmissionError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(ChurnwatchError)
    async def _user_error(request: Request, exc: ChurnwatchError):
        if pages.is_page(request):
            return pages.error_page(request, 400, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "Something went wrong on the server; it was logged. Try again, or tell "
                                       "your admin."}, status_code=500)

    def caller(request: Request) -> auth.Caller:
        return auth.caller_for(engine, request)

    @app.get("/healthz", tags=["service"])
    def healthz():
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.post("/api/v1/calls", status_code=202, tags=["calls"])
    def upload_call(
        request: Request,
        file: Annotated[Optional[UploadFile], File(description="The recording: wav, mp3, flac, m4a or ogg.")] = None,
        account_id: Annotated[Optional[str], Form()] = None,
        rep: Annotated[Optional[str], Form()] = None,
        call_date: Annotated[Optional[str], Form(description="YYYY-MM-DD (default: today)")] = None,
        external_id: Annotated[Optional[str], Form(description="Your id of the call; twice queues it once.")] = None,
        participants: Annotated[Optional[str], Form(description="Comma-separated e-mail addresses")] = None,
        language: Annotated[Optional[str], Form(description="The call's language code (en, de, ...); default: detected")] = None,
    ):
        who = caller(request)
        if who.role not in auth.UPLOAD_ANY and who.role != "rep":
            raise HTTPException(403, f"Your role ({who.role}) may read calls but not upload them.")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > config.max_upload_bytes + (1 << 20):
            raise SubmissionError(f"The recording is larger than the limit of {config.max_upload_bytes >> 20} MB.",
                                  status=413)
        if file is None or not isinstance(file, StarletteUploadFile):
            raise SubmissionError("Attach the recording as the multipart field 'file'.")
        suffix = check_suffix(file.filename)
        with store.session_scope(engine) as session:
            sub = check_submission(session, account_id=account_id, rep=rep, call_date=call_date,
                                   external_id=external_id, participants=participants, language=language)
            if not auth.may_see_account(session, who, sub.account_id):
                raise HTTPException(403, f"Account {sub.account_id} is not in your book; you can upload calls "
                                         "for your own accounts only.")
            if who.role == "rep":
                if sub.rep and sub.rep != who.rep_name:
                    raise HTTPException(403, f"You can upload your own calls only (rep {who.rep_name!r}).")
                sub.rep = who.rep_name
            elif sub.rep is None:
                account = session.get(store.Account, sub.account_id)
                sub.rep = account.rep.name if account is not None and account.rep is not None else None
            existing = job_for_external_id(session, sub.external_id)
            if existing is not None:
                return _existing(session, who, existing)
        path = save_upload(file.file, config.data_dir, suffix, config.max_upload_bytes)
        try:
            with store.session_scope(engine) as session:
                job, created = store.enqueue_job(session, file_path=str(path), account_id=sub.account_id, rep=sub.rep,
                                                 call_date=sub.call_date, external_id=sub.external_id,
                                                 participants=sub.participants, source="upload", created_by=who.id)
                if not created:
                    path.unlink(missing_ok=True)
                    return _existing(session, who, job)
                if sub.language:  # read by the worker (flow.worker.requested_language); replaced by the outcome
                    job.result = {"request": {"language": sub.language}}
                body = {"job_id": job.id, "status": job.status, "account_id": job.account_id,
                        "matched_by": sub.matched_by}
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return JSONResponse(body, status_code=202, headers={"Location": f"/api/v1/jobs/{body['job_id']}"})

    def _existing(session, who: auth.Caller, job) -> JSONResponse:
        if not auth.may_see_account(session, who, job.account_id):
            raise HTTPException(409, "This external_id was used before for a call you cannot see; use another one.")
        return JSONResponse({"job_id": job.id, "status": job.status, "account_id": job.account_id, "existing": True,
                             "call_id": job.call_id}, status_code=200,
                            headers={"Location": f"/api/v1/jobs/{job.id}"})

    @app.get("/api/v1/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: int, request: Request):
        who = caller(request)
        with store.session_scope(engine) as session:
            job = session.scalars(auth.visible_jobs(who).where(store.Job.id == job_id)).first()
            if job is None:
                raise HTTPException(404, f"No job {job_id} (or not one of your accounts').")
            return job_view(job)

    @app.get("/api/v1/jobs", tags=["jobs"])
    def list_jobs(request: Request, status: Optional[str] = None, limit: int = 50):
        who = caller(request)
        if status is not None and status not in JOB_STATUSES:
            raise HTTPException(422, f"status must be one of {', '.join(JOB_STATUSES)}.")
        limit = max(1, min(limit, 500))
        with store.session_scope(engine) as session:
            query = auth.visible_jobs(who).order_by(store.Job.id.desc()).limit(limit)
            if status:
                query = query.where(store.Job.status == status)
            return {"jobs": [job_view(j) for j in session.scalars(query)]}

    @app.get("/api/v1/calls/{call_id}", tags=["calls"])
    def get_call(call_id: int, request: Request):
        who = caller(request)
        with store.session_scope(engine) as session:
            call = session.scalars(auth.visible_calls(who).where(store.Call.id == call_id)).first()
            if call is None:
                raise HTTPException(404, f"No call {call_id} (or not one of your accounts').")
            job = session.scalars(select(store.Job).where(store.Job.call_id == call.id, store.Job.status == "done")
                                  .order_by(store.Job.id.desc()).limit(1)).first()
            risk = session.scalars(select(store.RiskScore).where(store.RiskScore.account_id == call.account_id)
                                   .order_by(store.RiskScore.as_of.desc(), store.RiskScore.id.desc()).limit(1)).first()
            return {
                "call_id": call.id,
                "account_id": call.account_id,
                "rep": call.rep.name if call.rep else None,
                "call_date": call.call_date.date().isoformat() if call.call_date else None,
                "status": call.status,
                "segments": [{"start": s.start, "end": s.end, "speaker": s.speaker, "text": s.text}
                             for s in call.segments],
                "cues": [{"label": c.label, "start": c.start, "end": c.end, "quote": c.quote, "rule": c.rule_name,
                          "rule_version": c.rule_version, "confidence": c.score} for c in call.cues],
                "hints": (job.result or {}).get("hints", []) if job is not None else [],
                "warnings": (job.result or {}).get("warnings", []) if job is not None else [],
                "risk": ({"score": risk.score, "threshold": risk.threshold, "as_of": risk.as_of.isoformat(),
                          "contributions": risk.contributions} if risk is not None else None),
            }

    return app


def app_from_env() -> FastAPI:
    """The app as `churnwatch serve` starts it (a uvicorn factory): settings from CHURNWATCH_* and
    churnwatch.toml, the database created or migrated."""
    from pipeline.settings import load_settings

    settings = load_settings()
    engine = store.make_engine(settings.db_url)
    store.ensure_db(engine)
    return create_app(settings, engine)
