"""The channels a citizen reaches the city's services through: the one home of their codes (as
landing.md's deliveries write them) and of the names people read (dashboard, reports).

The generator draws from these codes; the expectation suites (expectations/suites/2x_raw_*.yml)
check deliveries against the same list."""
from __future__ import annotations

CHANNEL_LABELS = {
    "ios": "iOS 客户端",
    "android": "安卓客户端",
    "alipay_mini": "支付宝小程序",
    "wechat_mini": "微信小程序",
    "web": "网页",
}
CHANNELS = tuple(CHANNEL_LABELS)


def channel_label(code: str) -> str:
    """The name of a channel; a code the contract does not list (a new app) as it was delivered."""
    return CHANNEL_LABELS.get(code, code)
