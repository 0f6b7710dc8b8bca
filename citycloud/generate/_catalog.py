"""The government services connected to a city's portal, their life cycle and the catalog
snapshots (service_catalog deliveries)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ._common import Sampler, csv_bytes, day_date, rng_for

# category -> (owning department, services)
VOCAB: dict[str, tuple[str, tuple[str, ...]]] = {
    "社保": ("市人社局", ("社保卡办理", "社保卡挂失", "社保卡补换", "社保缴费查询", "养老金领取资格认证",
                      "养老保险关系转移", "失业保险金申领", "参保证明打印", "灵活就业人员参保登记",
                      "职业技能补贴申领", "工伤认定申请", "就业登记")),
    "医疗": ("市卫健委", ("预约挂号", "电子健康档案查询", "疫苗接种预约", "体检报告查询", "出生医学证明办理",
                      "家庭医生签约", "检验检查结果查询", "母子健康手册办理")),
    "医保": ("市医保局", ("医保电子凭证", "医保缴费", "异地就医备案", "医保个人账户查询", "门诊费用报销",
                      "医保关系转移接续", "长护险申请")),
    "交通": ("市交通委", ("公交卡充值", "停车缴费", "ETC办理", "网约车驾驶员证申请", "出租车投诉",
                      "非机动车登记", "道路运输证年审")),
    "车驾管": ("市公安局交警支队", ("交通违法查询", "驾驶证换证", "机动车年检预约", "机动车临时号牌申领",
                            "驾驶人体检信息查询")),
    "公积金": ("市公积金中心", ("公积金查询", "公积金提取", "公积金贷款进度查询", "公积金缴存证明",
                          "公积金账户转移", "租房提取公积金", "公积金贷款申请")),
    "教育": ("市教育局", ("义务教育入学报名", "学籍查询", "中考成绩查询", "高考成绩查询", "教师资格认定",
                      "学历证明查询", "学生资助申请", "托育机构查询")),
    "户政": ("市公安局", ("户口迁移", "居住证办理", "身份证换领", "出生登记", "临时身份证明",
                      "户籍证明开具", "居住登记", "无犯罪记录证明")),
    "出入境": ("市公安局出入境管理局", ("护照办理", "港澳通行证签注", "台湾通行证办理", "出入境记录查询")),
    "民政": ("市民政局", ("婚姻登记预约", "最低生活保障申请", "高龄津贴申领", "残疾人补贴申请",
                      "殡葬服务预约", "养老服务补贴申请")),
    "税务": ("市税务局", ("个人所得税申报", "个税专项附加扣除", "发票查验", "完税证明开具", "车船税缴纳")),
    "不动产": ("市规划和自然资源局", ("不动产登记查询", "不动产权证书办理", "房屋交易查询", "抵押登记")),
    "市场监管": ("市市场监管局", ("营业执照办理", "个体工商户登记", "食品经营许可", "消费投诉举报",
                            "企业信息查询")),
    "住房": ("市住建局", ("公租房申请", "住房租赁备案", "房屋维修资金查询", "人才公寓申请")),
    "生活缴费": ("市公用事业服务中心", ("水费缴纳", "电费缴纳", "燃气缴费", "有线电视缴费")),
    "文旅": ("市文旅局", ("景区预约", "图书馆借阅查询", "文化场馆预约", "体育场馆预约")),
}
HANDLING = pl.Series(["全程网办", "最多跑一次", "预约办理", "线下办理"])
GHOSTS = 5  # service ids accessed but never in the catalog (dirt)


@dataclass
class Catalog:
    code: str
    ids: pl.Series
    frame: pl.DataFrame   # service_id, service_name, department, category (+ handling_mode)
    online: np.ndarray    # day numbers
    offline: np.ndarray   # day number or a huge value
    listed: np.ndarray    # first snapshot day that lists it
    decided: np.ndarray   # first snapshot day that shows its offline_date
    pop: np.ndarray       # popularity weights (long-tailed)
    p_fail: np.ndarray
    p_timeout: np.ndarray
    snapshots: np.ndarray  # days a snapshot is delivered

    def ghost_ids(self) -> pl.Series:
        return pl.Series([f"S{self.code}9{k:03d}" for k in range(GHOSTS)])

    def sample(self, rng: np.random.Generator, event_dn: np.ndarray) -> np.ndarray:
        """Services opened by accesses on the given days: Zipf-like among the connected ones
        that a snapshot delivered by then lists (the portal lists what the catalog knows)."""
        out = np.zeros(len(event_dn), dtype=np.int64)
        for d in np.unique(event_dn):
            rows = np.flatnonzero(event_dn == d)
            ref = self.snapshots[max(0, int(np.searchsorted(self.snapshots, d, side="right")) - 1)]
            live = np.flatnonzero((self.online <= d) & (self.offline > d) & (self.listed <= ref))
            if len(live) == 0:
                live = np.arange(len(self.online))
            out[rows] = live[Sampler(np.cumsum(self.pop[live])).sample(rng, len(rows))]
        return out


def build_catalog(code: str, seed: int, size: int, districts, open_dn: int, start_dn: int,
                  last_dn: int) -> Catalog:
    rng = rng_for(seed, int(code), 201)
    base = [(cat, dept, name) for cat, (dept, names) in VOCAB.items() for name in names]
    local = [(cat, dept.replace("市", dname, 1), dname + name, True)
             for dname in (d[1] for d in districts) for cat, dept, name in base]
    pick = rng.permutation(len(local))[: max(0, size - len(base))]
    rows = [(c, d, n, False) for c, d, n in base] + [local[i] for i in sorted(pick)]
    n = len(rows)
    days = last_dn - start_dn + 1
    city_level = np.array([not r[3] for r in rows])
    # City-wide services came with the launch (first year); district ones followed over the years.
    span = np.where(city_level, min(365, start_dn - open_dn), start_dn - open_dn)
    online = open_dn + (rng.random(n) ** 1.4 * span).astype(np.int64)
    new = ~city_level & (rng.random(n) < 0.09)
    online = np.where(new, start_dn + rng.integers(0, days + 21, n), online)
    listed = np.maximum(online - rng.integers(0, 21, n), open_dn)
    gone = ~city_level & (rng.random(n) < 0.08)
    off = np.where(rng.random(n) < 0.5, online + rng.integers(30, 400, n), start_dn + rng.integers(0, days + 1, n))
    offline = np.where(gone, np.maximum(off, online + 1), np.iinfo(np.int64).max // 4)
    decided = np.where(gone, np.maximum(offline - rng.integers(0, 15, n), listed), offline)
    order = np.lexsort((np.arange(n), online))
    ids = pl.Series([f"S{code}{i + 1:04d}" for i in range(n)])
    frame = pl.DataFrame({
        "service_id": ids,
        "service_name": [rows[i][2] for i in order],
        "department": [rows[i][1] for i in order],
        "category": [rows[i][0] for i in order],
        "handling_mode": HANDLING.gather(pl.Series(rng.integers(0, len(HANDLING), n))),
    })
    district_level = np.array([rows[i][3] for i in order])
    rank = rng.permutation(n)
    pop = 1.0 / (rank + 1.0) ** 1.1 * np.where(district_level, 0.35, 1.0)
    flaky = rng.random(n) < 0.12
    p_fail = np.where(flaky, rng.uniform(0.08, 0.2, n), rng.uniform(0.01, 0.04, n))
    return Catalog(code, ids, frame, online[order], offline[order], listed[order], decided[order],
                   pop, p_fail, rng.uniform(0.003, 0.02, n), snapshot_days(seed, code, start_dn, last_dn))


def snapshot_days(seed: int, code: str, start_dn: int, last_dn: int) -> np.ndarray:
    """Snapshots: on the first day and then on about two days in five."""
    rng = rng_for(seed, int(code), 202)
    return np.array([d for d in range(start_dn, last_dn + 1) if d == start_dn or rng.random() < 0.4])


def write_catalog(city, cat: Catalog, landing) -> None:
    rng = rng_for(city.seed, int(city.code), 204)
    dns = [int(d) for d in cat.snapshots]
    drift_from = dns[int(rng.integers(0, len(dns)))]
    bad_from = dns[min(int(rng.integers(0, 3)), len(dns) - 1)]
    for dn in dns:
        frng = rng_for(city.seed, int(city.code), 203, dn)
        keep = np.flatnonzero(cat.listed <= dn)
        snap = cat.frame[keep]
        off = cat.offline[keep]
        shown = cat.decided[keep] <= dn
        snap = snap.with_columns(
            online_date=pl.Series([day_date(d).isoformat() for d in cat.online[keep]], dtype=pl.Utf8),
            offline_date=pl.Series([day_date(d).isoformat() if s else None for d, s in zip(off, shown)],
                                   dtype=pl.Utf8),
        )
        cols = ["service_id", "service_name", "department", "category", "online_date", "offline_date"]
        if city.dirt and dn >= drift_from:
            cols.append("handling_mode")  # additive schema drift
        snap = snap.select(cols)
        if city.dirt and dn >= bad_from:
            from ._dirt import catalog_bad_rows
            bad = pl.DataFrame(catalog_bad_rows(city.code), schema={c: pl.Utf8 for c in cols})
            city.plan.log += [(city.code, "service_catalog", dn, k) for k in ("bad_date", "missing_field")]
            snap = pl.concat([snap, bad.select(cols)])
        gz = bool(frng.random() < 0.25)
        landing.put(city.code, "service_catalog", dn, "catalog.csv" + (".gz" if gz else ""), csv_bytes(snap),
                    rows=snap.height, gz=gz, bom=city.dirt and bool(frng.random() < 0.2))
        landing.success(city.code, "service_catalog", dn)
