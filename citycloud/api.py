"""`citycloud api`: the HTTP API of access.md for the tools people already use (Excel's web query,
BI tools, scripts): `citycloud query`'s answers for the caller's cities.

- `GET /v1/metrics?metrics=dau,mau&grain=day|week|month[&city=CODE][&start=D][&end=D][&format=json|csv]`:
  the same columns and values as `citycloud query` (the same `citycloud.query.run_query`), on a
  connection that sees only the caller's cities (`citycloud.access.scoped_connection`).
- `GET /v1/cities`: the caller's cities and their names. `GET /healthz`: no login, no data.
- OpenAPI description at `/docs` (and `/openapi.json`).

Every request but /healthz carries `Authorization: Bearer <access token>` of the provider in
access.yml (citycloud.access.tokens): none or a bad one is 401, a city outside the scope 403;
both, and every answer, go to the access log. access.yml is read again when it changes. The
published snapshot is read, never the warehouse: a request never waits for (nor blocks) a run.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from citycloud import query, registry
from citycloud.access import AccessFile, AccessLog, Scope, default_log_path, scoped_connection
from citycloud.access.cities import city_names
from citycloud.access.tokens import InvalidToken, TokenVerifier
from citycloud.config import CitycloudError, published_path


class _Refusal(Exception):
    def __init__(self, status: int, message: str, detail: str, cities=()):
        super().__init__(message)
        self.status, self.message, self.detail, self.cities = status, message, detail, tuple(cities)


def create_app(warehouse: Path | str, access: AccessFile, log: AccessLog) -> FastAPI:
    warehouse = Path(warehouse).expanduser().resolve()
    app = FastAPI(title="citycloud API", version="1",
                  description="`citycloud query`'s answers for the caller's cities (docs/access.md). "
                              "Send `Authorization: Bearer <access token>` of the organisation's provider.")
    verifiers: dict[object, TokenVerifier] = {}

    def verifier() -> TokenVerifier:
        config = access.current()
        if config is None:
            raise _Refusal(403, "no access", f"access file unusable: {access.error}")
        if config.oidc not in verifiers:
            verifiers.clear()
            verifiers[config.oidc] = TokenVerifier(config.oidc)
        return verifiers[config.oidc]

    def caller(request: Request) -> Scope:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refusal(401, "missing bearer token", "no bearer token")
        v = verifier()
        try:
            claims = v.claims(token)
        except InvalidToken as exc:
            raise _Refusal(401, "invalid token", str(exc)) from None
        subject = claims.get(v.oidc.identity_claim)
        scope = access.scope_for(subject)
        if scope is None:
            request.state.subject = str(subject) if subject else None
            raise _Refusal(403, "no access", "not in access.yml")
        request.state.scope = scope
        return scope

    def record(request: Request, action: str, cities=(), detail: str = "") -> None:
        scope = getattr(request.state, "scope", None)
        log.record(surface="api", action=action, target=request.url.path, cities=cities, detail=detail,
                   subject=scope.subject if scope else getattr(request.state, "subject", None),
                   role=scope.role if scope else None)

    @app.exception_handler(_Refusal)
    async def refused(request: Request, exc: _Refusal) -> JSONResponse:
        record(request, "denied", exc.cities if exc.status != 403 else (), exc.detail)
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if exc.status == 401 else None
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    @app.get("/healthz", summary="liveness (no login, no data)")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/cities", summary="the caller's cities with their names")
    def cities(request: Request) -> list[dict]:
        scope = caller(request)
        names = city_names()
        shown = [c for c in scope.cities if c in names]
        record(request, "request", shown)
        return [{"city_code": c, "city_name": names[c]} for c in shown]

    @app.get("/v1/metrics", summary="metrics per city and period, as `citycloud query` answers them",
             responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
    def metrics(request: Request,
                metrics: str = Query(..., description="comma-separated metric names, e.g. dau,mau"),
                grain: str = Query(..., pattern="^(day|week|month)$"),
                city: str | None = Query(None, description="one 6-digit city code (default: every city in scope)"),
                start: dt.date | None = Query(None, description="first period, YYYY-MM-DD"),
                end: dt.date | None = Query(None, description="last period, YYYY-MM-DD"),
                format: str = Query("json", pattern="^(json|csv)$")) -> Response:
        scope = caller(request)
        if city is not None and not scope.allows(city):
            raise _Refusal(403, "no access", "city outside the scope")
        try:
            req = query.QueryRequest(metrics=query.parse_metrics(metrics), grain=grain, city=city)
            reg = registry.load()
            query.check_request(reg, req)
        except CitycloudError as exc:
            return JSONResponse({"error": str(exc).removeprefix("--")}, status_code=400)
        snapshot = published_path(warehouse)
        if not snapshot.exists():
            return JSONResponse({"error": "no published snapshot yet: run `citycloud run` first"}, status_code=503)
        con = scoped_connection(snapshot, scope)
        try:
            df = query.run_query(con, reg, req)
        finally:
            con.close()
        periods = pd.to_datetime(df["period"]).dt.date
        keep = pd.Series(True, index=df.index)
        if start:
            keep &= periods >= start
        if end:
            keep &= periods <= end
        df = df[keep].reset_index(drop=True)
        record(request, "request", sorted(set(df["city_code"])) or ([city] if city else scope.cities),
               detail=f"metrics={','.join(req.metrics)} grain={grain} format={format} rows={len(df)}")
        if format == "csv":
            return PlainTextResponse(query.as_text(df), media_type="text/csv; charset=utf-8")
        return JSONResponse(records(df))

    return app


def records(df: pd.DataFrame) -> list[dict]:
    """The rows as JSON objects: the period's first day as `citycloud query` writes it
    (YYYY-MM-DD), numbers as they are (integers stay integers, rates full precision), null for none."""
    out = df.copy()
    out["period"] = pd.to_datetime(out["period"]).dt.strftime("%Y-%m-%d")
    return [{k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
            for row in out.to_dict(orient="records")]


def serve_api(warehouse: Path | str, access: Path | str, address: str = "127.0.0.1", port: int = 8502,
              access_log: Path | str | None = None) -> None:
    """Run the API with uvicorn until stopped; access.yml and the warehouse are checked first
    (one-line errors)."""
    import uvicorn

    warehouse = Path(warehouse).expanduser()
    if not warehouse.exists() and not published_path(warehouse).exists():
        raise CitycloudError(f"--warehouse {warehouse} does not exist (nor its published snapshot): "
                             "run `citycloud run` first, or check the path")
    app = create_app(warehouse, AccessFile(access), AccessLog(access_log or default_log_path(warehouse)))
    uvicorn.run(app, host=address, port=int(port), log_level="warning", access_log=False)
