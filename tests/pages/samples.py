"""Real User-Agent strings and sample page views shared by the page tests."""

from __future__ import annotations

from router.web.pages import AppLinks, PageKind, PageView

# Real User-Agent strings as sent by the named browsers / in-app browsers.
UA = {
    "iphone_safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "ipad_safari_legacy": "Mozilla/5.0 (iPad; CPU OS 12_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/12.1 Mobile/15E148 Safari/604.1",
    "iphone_chrome": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
    "android_chrome": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
    "android_samsung": "Mozilla/5.0 (Linux; Android 13; SM-S908B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "facebook_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/459.0.0.38.115;FBBV/585196003;FBDV/iPhone15,2;"
    "FBMD/iPhone;FBSN/iOS;FBSV/17.4.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/587396834]",
    "facebook_android": "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36 "
    "[FB_IAB/FB4A;FBAV/446.0.0.27.352;]",
    "instagram_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Instagram 309.1.1.28.108 (iPhone13,3; iOS 17_1_2; en_US; en; "
    "scale=3.00; 1170x2532; 541635890)",
    "instagram_android": "Mozilla/5.0 (Linux; Android 12; SM-A525F Build/SP1A.210812.016; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 "
    "Instagram 311.0.0.32.118 Android (31/12; 450dpi; 1080x2207; samsung; SM-A525F; a52q; qcom; en_US; "
    "545986883)",
    "line_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Safari Line/13.16.0",
    "line_android": "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/116.0.5845.163 Mobile Safari/537.36 Line/13.15.1/IAB",
    "gmail_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) GSA/295.0.590048842 Mobile/15E148 Safari/604.1",
    "twitter_android": "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UD1A.230803.041; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/118.0.5993.111 Mobile Safari/537.36 "
    "TwitterAndroid",
    "twitter_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 12_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/16B92 Twitter for iPhone/7.40",
    "linkedin_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.28.6342",
    "wechat_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.38(0x1800262b) NetType/WIFI Language/zh_CN",
    "android_webview": "Mozilla/5.0 (Linux; Android 11; Pixel 5 Build/RQ3A.210805.001.A1; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/92.0.4515.159 Mobile Safari/537.36",
    "desktop_chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "desktop_firefox": "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "desktop_safari": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "curl": "curl/8.5.0",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}

HOSTILE = '<script>alert("x")</script>&<b onmouseover=1>'
APP_STORE_ID = "1234567890"
ANDROID_PACKAGE = "com.example.shop"
IOS_OPEN_URL = "https://open.shop.example/amazon-pay/result?ref=r1"


def app_links(ios_open_url: str = IOS_OPEN_URL) -> AppLinks:
    return AppLinks(app_store_id=APP_STORE_ID, ios_open_url=ios_open_url, android_package=ANDROID_PACKAGE)


def sample_view(kind: PageKind, **overrides: object) -> PageView:
    """A fully populated view of ``kind``: the page must cope with every optional field set."""
    fields: dict[str, object] = {
        "merchant_name": "Example Shop",
        "merchant_reference": "ORDER-1042",
        "amount": "1000",
        "currency": "JPY",
        "buyer_name": "Jane Doe",
        "buyer_email": "jane.doe@example.com",
        "payment_descriptor": "Visa ****1234",
        "return_url": "https://shop.example/cart",
        "app_links": app_links(),
    }
    fields.update(overrides)
    return PageView(kind, **fields)  # type: ignore[arg-type]
