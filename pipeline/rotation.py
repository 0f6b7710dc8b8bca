"""`citycloud rotate-key`: move the warehouse to a new PII key on purpose, then rebuild.

The current key comes from CITYCLOUD_PII_KEY (it must match the warehouse's fingerprint), the
new one from CITYCLOUD_NEW_PII_KEY. After it succeeds, set CITYCLOUD_PII_KEY to the new key
everywhere (CLI, Airflow Variable or Connection): the old key is refused from then on.
"""
from __future__ import annotations

from citycloud.pipeline import steps
from citycloud.config import NEW_PII_KEY_ENV as NEW_KEY_ENV
from citycloud.config import CitycloudError, Settings, check_key_strength, pii_key
from citycloud.db import connect, writer_step
from citycloud.ingestion.load import FileLimits
from citycloud.ingestion.rekey import rotate_key


@writer_step
def rotate(settings: Settings, progress: steps.Progress = None) -> str:
    # The keys `settings` were given, else the environment's when the step runs (config.pii_key).
    old_key = pii_key(settings=settings)
    new_secret = settings.new_pii_key or Settings().new_pii_key
    new_text = new_secret.get_secret_value() if new_secret else ""
    if not new_text:
        raise CitycloudError(f"{NEW_KEY_ENV} is not set: put the new key there and the current one in CITYCLOUD_PII_KEY")
    new_key = check_key_strength(new_text, NEW_KEY_ENV)
    if not settings.landing.is_dir():
        raise CitycloudError(f"landing area {settings.landing} is not a directory")
    if not settings.warehouse.exists():
        raise CitycloudError(f"warehouse {settings.warehouse} does not exist: nothing to re-key")
    con = connect(settings.warehouse, settings=settings)
    try:
        report = rotate_key(con, settings.landing, old_key, new_key, progress, FileLimits.of(settings))
    finally:
        con.close()
    # Every model holding a user key is rebuilt from the re-keyed raw tables.
    steps.build(settings, full_refresh=True, progress=progress)
    quality = steps.check(settings, progress)
    if quality.blocking_failures:
        raise steps.BlockingFailure("re-keyed, but the rebuilt marts failed blocking checks and were NOT published:\n  "
                             + "\n  ".join(str(f) for f in quality.blocking_failures))
    steps.publish(settings, progress)
    return report.summary_line() + f"; set CITYCLOUD_PII_KEY to the new key now"
