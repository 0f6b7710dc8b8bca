"""ratings deliveries (好差评): reviews of accesses, delivered when written (often the same day,
sometimes the next, now and then a week late)."""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import polars as pl

from ._common import format_ts, insert_rows, lines_bytes, pick_forms, rng_for, ymd
from ._dirt import rating_bad_line
from ._people import phone_numbers

POSITIVE = ("办理很快，点赞", "很方便，不用跑腿了", "流程清晰，一次办好", "服务态度好", "手机上就办完了，好评",
            "比以前快多了", "材料一次就审核通过了", "界面简洁，容易找到")
NEUTRAL = ("还可以", "一般般，希望再快一点", "有点慢，但办成了", "说明可以再清楚些")
NEGATIVE = ("页面一直转圈", "提交失败好几次", "太慢了，等了半天", "验证码收不到", "流程太复杂，看不懂",
            "系统老是超时", "上传材料总是失败", "客服电话打不通")
SCORE_CDF = {0: np.cumsum([0.03, 0.02, 0.06, 0.22, 0.67]), 1: np.cumsum([0.35, 0.2, 0.2, 0.15, 0.1])}
_TEXTS = pl.Series([json.dumps(t, ensure_ascii=False)[1:-1] for t in POSITIVE + NEUTRAL + NEGATIVE])


class RatingsWriter:
    def __init__(self, city, pop, cat, landing):
        self.city, self.pop, self.cat, self.landing = city, pop, cat, landing
        self.pending: dict[int, list[pl.DataFrame]] = defaultdict(list)
        self.resend: dict[int, list[pl.Series]] = defaultdict(list)
        self.forced = False
        self.late_done = False
        self.bad: list[pl.DataFrame] = []  # the bad reviews written, for their tickets (_tickets.py)

    def add(self, candidates: list[pl.DataFrame], dn: int) -> None:
        target = self.city.plan.very_late.get((self.city.code, "ratings"), 0)
        for df in candidates:
            if df.height and not self.late_done and target - dn >= 14:  # one review weeks late
                df = df.with_columns(deliver=pl.when(pl.int_range(pl.len()) == 0).then(target)
                                     .otherwise(pl.col("deliver")))
                self.late_done = True
            if df.height:
                for (day,), part in df.partition_by("deliver", as_dict=True, maintain_order=True).items():
                    if day <= self.city.last_dn:
                        self.pending[int(day)].append(part)

    def deliver(self, dn: int) -> None:
        city, plan = self.city, self.city.plan
        rng = rng_for(city.seed, int(city.code), 601, dn)
        parts = self.pending.pop(dn, [])
        df = pl.concat(parts).sort("ts", maintain_order=True) if parts else None
        n = df.height if df is not None else 0
        lines = self._lines(rng, df, dn) if n else pl.Series([], dtype=pl.Utf8)
        self._pick_resend(rng, lines, dn)
        kinds = plan.bad_kinds(rng, city.code, "ratings", dn, n)
        bad = [rating_bad_line(rng, kind, city.code, dn, f"G{city.code}-{ymd(dn)}-{n + j:08d}",
                               self.cat.ids[int(rng.integers(0, len(self.cat.ids)))],
                               f"U{city.code}{int(rng.integers(1, self.pop.n + 1)):06d}")
               for j, kind in enumerate(kinds)]
        extra = pl.concat([pl.Series(bad, dtype=pl.Utf8), *self.resend.pop(dn, [])])
        dups = rng.integers(0, n, int(rng.random() < 0.3)) if n else np.array([], dtype=np.int64)
        order = insert_rows(n, rng, dups, len(extra))
        out = pl.concat([lines, extra]).gather(pl.Series(order)) if len(order) else lines
        gz = bool(rng.random() < 0.3)
        self.landing.put(city.code, "ratings", dn, "ratings.jsonl" + (".gz" if gz else ""), lines_bytes(out),
                         rows=len(out), gz=gz, bom=city.dirt and bool(rng.random() < 0.05))
        if plan.complete(city.code, "ratings", dn):
            self.landing.success(city.code, "ratings", dn)

    def _lines(self, rng, df: pl.DataFrame, dn: int) -> pl.Series:
        n = df.height
        outcome = df["outcome"].to_numpy()
        u = rng.random(n)
        score = np.where(outcome == 0, np.searchsorted(SCORE_CDF[0], u * SCORE_CDF[0][-1], side="right"),
                         np.searchsorted(SCORE_CDF[1], u * SCORE_CDF[1][-1], side="right")).clip(0, 4) + 1
        p, q = len(POSITIVE), len(NEUTRAL)
        text = np.where(score >= 4, rng.integers(0, p, n),
                        np.where(score == 3, p + rng.integers(0, q, n), p + q + rng.integers(0, len(NEGATIVE), n)))
        has_comment = rng.random(n) < np.where(score <= 2, 0.35, 0.1)
        with_phone = has_comment & (rng.random(n) < 0.15)
        acc_null = rng.random(n) < 0.03
        user_null = rng.random(n) < 0.02
        svc, user = df["svc"], df["user"]
        if self.city.dirt and not self.forced and n >= 2:  # a review of an unknown service, by an unknown user
            a, b = rng.choice(n, 2, replace=False)
            svc = svc.scatter(int(a), self.cat.ghost_ids()[int(rng.integers(0, 5))])
            user = user.scatter(int(b), f'"U{self.city.code}9{int(rng.integers(0, 10**6)):08d}"')
            user_null[b] = False
            acc_null[[a, b]] = True  # reviews left from the service page, not linked to an access
            self.forced = True
        frame = pl.DataFrame({
            "seq": np.arange(n), "acc": df["acc"], "user": user, "svc": svc, "score": score,
            "et": format_ts(df["ts"].to_numpy(), pick_forms(rng, n, epoch=False), json=True),
            "text": _TEXTS.gather(pl.Series(text)), "hc": has_comment, "wp": with_phone,
            "phone": phone_numbers(rng, n), "an": acc_null, "un": user_null,
        })
        comment = pl.when(~pl.col("hc")).then(pl.lit("null")).when(pl.col("wp")).then(
            pl.concat_str([pl.lit('"'), pl.col("text"), pl.lit("，请联系我"), pl.col("phone").cast(pl.Utf8),
                           pl.lit('"')])).otherwise(pl.concat_str([pl.lit('"'), pl.col("text"), pl.lit('"')]))
        line = pl.concat_str([
            pl.lit(f'{{"event_id": "G{self.city.code}-{ymd(dn)}-'), pl.col("seq").cast(pl.Utf8).str.zfill(8),
            pl.lit('", "access_event_id": '),
            pl.when(pl.col("an")).then(pl.lit("null")).otherwise(
                pl.concat_str([pl.lit('"'), pl.col("acc"), pl.lit('"')])),
            pl.lit(', "user_id": '), pl.when(pl.col("un")).then(pl.lit("null")).otherwise(pl.col("user")),
            pl.lit(', "service_id": "'), pl.col("svc"), pl.lit('", "score": '), pl.col("score").cast(pl.Utf8),
            pl.lit(', "event_time": '), pl.col("et"), pl.lit(', "comment": '), comment, pl.lit("}"),
        ])
        self._keep_bad(dn, score, df["ts"], svc, user, user_null)
        return frame.select(line.alias("line")).to_series()

    def _keep_bad(self, dn: int, score, ts: pl.Series, svc: pl.Series, user: pl.Series, user_null) -> None:
        pick = pl.Series(np.flatnonzero(score <= 2))
        if len(pick):
            self.bad.append(pl.DataFrame({
                "event_id": f"G{self.city.code}-{ymd(dn)}-" + pick.cast(pl.Utf8).str.zfill(8),
                "ts": ts.gather(pick), "svc": svc.gather(pick),
                "real": (user.gather(pick) != "null") & ~pl.Series(user_null).gather(pick),
            }))

    def take_bad(self) -> pl.DataFrame:
        """The bad reviews written since the last call (event_id, ts, svc, real: has a user_id)."""
        out = pl.concat(self.bad) if self.bad else pl.DataFrame(
            schema={"event_id": pl.Utf8, "ts": pl.Int64, "svc": pl.Utf8, "real": pl.Boolean})
        self.bad = []
        return out

    def _pick_resend(self, rng, lines: pl.Series, dn: int) -> None:
        n = len(lines)
        if n == 0 or rng.random() >= 0.3:
            return
        idx = np.sort(rng.choice(n, min(n, 1 + int(rng.binomial(n, 0.002))), replace=False))
        target = dn + int(rng.integers(1, 4))
        if target <= self.city.last_dn:
            self.resend[target].append(lines.gather(pl.Series(idx)))
