"""Who is looking: login, the person's scope, page access and the access log (Streamlit side).

`gate()` runs first on every page load (dashboards/app.py). Local mode (no `--access`): every
city and page, a banner says so (the launcher allows it on loopback only). With `--access FILE`:
nobody sees data before `st.login` at the provider of access.yml; a person who logged in but is
not in the file sees "no access" naming no city. The scope is looked up again on every page load
from the file as it stands (citycloud.access.AccessFile re-reads it when it changed), so a
removal takes effect at the next load. Every login, logout, view and refusal is appended to the
access log; it never holds a token or secret (only the identity claim, role, page and cities).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

import streamlit as st

from citycloud.access import AccessFile, AccessLog, Scope, default_log_path
from citycloud.access.cities import city_names
from citycloud.config import Settings

LOCAL_BANNER = "local mode: no login, every city visible"
NO_ACCESS = "no access"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--warehouse")
    parser.add_argument("--access")
    parser.add_argument("--access-log")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


@st.cache_resource(show_spinner=False)
def _access_file(path: str) -> AccessFile:
    return AccessFile(path)


def access_file() -> AccessFile | None:
    path = _args().access
    return _access_file(str(Path(path).expanduser().resolve())) if path else None


def access_log() -> AccessLog:
    args = _args()
    if args.access_log:
        return AccessLog(args.access_log)
    warehouse = Path(args.warehouse).expanduser() if args.warehouse else Settings().warehouse
    return AccessLog(default_log_path(warehouse))


def log(action: str, target: str, cities=(), detail: str = "", scope: Scope | None = None,
        subject: str | None = None) -> None:
    scope = scope or st.session_state.get("_scope")
    access_log().record(surface="dashboard", action=action, target=target, cities=cities, detail=detail,
                        subject=scope.subject if scope else subject, role=scope.role if scope else None)


def current_scope() -> Scope:
    """The scope `gate()` established for this page load (a page never runs without one)."""
    scope = st.session_state.get("_scope")
    if not isinstance(scope, Scope):
        st.error(NO_ACCESS)
        st.stop()
    return scope


def deny(target: str, detail: str, cities=()) -> NoReturn:
    """Show "no access" (naming nothing the person may not see), log it as denied, stop."""
    log("denied", target, cities=cities, detail=detail)
    st.error(f"无权访问 · {NO_ACCESS}", icon=":material/block:")
    st.stop()


def _logout() -> None:
    log("logout", "logout")
    st.session_state.pop("_logged_in_as", None)
    st.logout()


def _login_page() -> NoReturn:
    st.title("市民云运营看板 citycloud")
    st.write("请先登录。 Log in with your organisation's account to see the figures of your cities.")
    st.button("登录 Log in", on_click=st.login, type="primary")
    st.stop()


def _no_access_page(subject: str | None, detail: str) -> NoReturn:
    log("denied", "login", subject=subject, detail=detail)
    st.title(f"无权访问 · {NO_ACCESS}")
    st.write("您的账号没有被授权查看任何城市的数据，请联系管理员。 "
             "Your account is not entitled to any city: ask the administrator to add you.")
    st.button("退出登录 Log out", on_click=_logout)
    st.stop()


def gate() -> Scope:
    """The scope of whoever is looking, or a login / "no access" page (and stop)."""
    af = access_file()
    if af is None:
        scope = Scope.local(tuple(sorted(city_names())))
        st.session_state["_scope"] = scope
        st.info(LOCAL_BANNER, icon=":material/lock_open:")
        return scope
    st.session_state.pop("_scope", None)
    if not st.user.is_logged_in:
        _login_page()
    config = af.current()
    if config is None:  # the file turned invalid: nobody until it is fixed
        _no_access_page(None, f"access file unusable: {af.error}")
    subject = st.user.get(config.oidc.identity_claim)
    scope = config.scope_for(subject)
    if scope is None:
        st.session_state.pop("_logged_in_as", None)
        _no_access_page(str(subject) if subject else None, "not in access.yml")
    st.session_state["_scope"] = scope
    if st.session_state.get("_logged_in_as") != scope.subject:
        st.session_state["_logged_in_as"] = scope.subject
        log("login", "login", cities=scope.cities, scope=scope)
    with st.sidebar:
        st.caption(f"{scope.subject} · {scope.role}")
        st.button("退出登录 Log out", on_click=_logout, key="_logout")
    return scope


def log_view(page: str, cities) -> None:
    """A view of `page` showing `cities`, logged once per change of page or cities in a session."""
    key = (page, tuple(cities))
    if st.session_state.get("_last_view") != key:
        st.session_state["_last_view"] = key
        log("view", page, cities=cities)
