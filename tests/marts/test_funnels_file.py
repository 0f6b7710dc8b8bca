"""funnels.yml (user_ops.md, "Funnels"): valid files load; each wrong one is refused in one line
naming the file, the funnel and the rule; `citycloud run --funnels` exits 2 on it."""
from __future__ import annotations

import pytest

from citycloud.pipeline.cli import main
from citycloud.config import CitycloudError
from citycloud.funnels import check_against_catalog, definitions_json, load_funnels
from tests.conftest import TINY

GOOD = """funnels:
  - name: first_social_security
    label: 注册→实名→首次社保服务
    window_days: 7
    steps:
      - {event: register}
      - {event: verify, min_auth_level: 2}
      - {event: access, category: 社保, outcome: success}
"""


def _refusal(tmp_path, text: str) -> str:
    path = tmp_path / "funnels.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CitycloudError) as exc:
        load_funnels(path)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_the_specs_example_loads_with_default_step_labels(tmp_path):
    path = tmp_path / "funnels.yml"
    path.write_text(GOOD, encoding="utf-8")
    (funnel,) = load_funnels(path)
    assert [s.default_label() for s in funnel.steps] == [
        "register", "verify min_auth_level=2", "access category=社保 outcome=success"]
    assert '"step_label": "access category=社保 outcome=success"' in definitions_json([funnel])


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("event: verify", "event: login"), "funnel first_social_security: step 2: event: Input should be 'register', 'verify' or 'access'"),
    (GOOD.replace("category: 社保", "categroy: 社保"), "funnel first_social_security: step 3: categroy: unknown filter"),
    (GOOD.replace("window_days: 7", "window_days: 0"), "funnel first_social_security: window_days: Input should be greater than 0"),
    (GOOD.replace("{event: register}", "{event: register, outcome: success}"), "funnel first_social_security: step 1: outcome filters access steps, not register"),
    (GOOD.replace("min_auth_level: 2}", "min_auth_level: 2, first: true}"), "funnel first_social_security: first: true is allowed on step 1 only"),
    (GOOD + GOOD.split("funnels:\n")[1], "funnel first_social_security: duplicate name"),
    (GOOD.replace("- name: first_social_security", "- name: first-social"), "funnel first-social: name: String should match pattern '^[A-Za-z0-9_]+$'"),
    (GOOD.replace("steps:", "steps: &s").replace("{event: register}", "{event: register}"), None),
])
def test_a_wrong_file_is_refused_in_one_line(tmp_path, text, message):
    got = _refusal(tmp_path, text)
    assert (got == message) if message else ("anchors and aliases" in got), got


def test_a_service_or_category_no_catalog_had_is_refused(tmp_path):
    path = tmp_path / "funnels.yml"
    path.write_text(GOOD, encoding="utf-8")
    funnels = load_funnels(path)
    check_against_catalog(funnels, "f.yml", {"category": {"社保"}})
    with pytest.raises(CitycloudError, match=r"^f.yml: funnel first_social_security: step 3: category '社保' is in no catalog snapshot"):
        check_against_catalog(funnels, "f.yml", {"category": {"医疗"}})


def test_run_refuses_a_bad_funnels_file_with_exit_2_before_reading_anything(tmp_path, capsys):
    bad = tmp_path / "funnels.yml"
    bad.write_text(GOOD.replace("window_days: 7", "window_days: -1"), encoding="utf-8")
    code = main(["run", "--landing", str(TINY / "landing"), "--warehouse", str(tmp_path / "wh" / "c.duckdb"),
                 "--funnels", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"citycloud run: error: {bad}: funnel first_social_security: window_days: Input should be greater than 0"]
    assert not (tmp_path / "wh" / "c.duckdb").exists()


def test_citycloud_funnels_names_the_file(monkeypatch, tmp_path):
    from citycloud.config import Settings

    monkeypatch.setenv("CITYCLOUD_FUNNELS", str(tmp_path / "f.yml"))
    assert Settings().funnels == tmp_path / "f.yml"
    monkeypatch.delenv("CITYCLOUD_FUNNELS")
    assert Settings().funnels is None
