from router.web.routing import Flow, Route, RouteTable, host_pattern_matches, normalize_host

TABLE = RouteTable([
    Route("pay.example.com", "/amazon-pay/result", Flow.SUCCESS),
    Route("*.example.com", "/amazon-pay/result", Flow.ERROR),
    Route("*.shop.example.com", "/amazon-pay/result", Flow.CANCEL),
    Route("*", "/amazon-pay/result", Flow.CANCEL),
    Route("*", "/amazon-pay/cancel", Flow.CANCEL),
    Route("pay.example.com", "/amazon-pay/error", Flow.ERROR),
])


def test_normalize_host_drops_case_port_and_trailing_dot() -> None:
    assert normalize_host("Pay.Example.COM.") == "pay.example.com"
    assert normalize_host("pay.example.com:8443") == "pay.example.com"
    assert normalize_host("pay.example.com.:443") == "pay.example.com"
    assert normalize_host("[::1]:8000") == "[::1]"


def test_wildcards_match_subdomains_not_the_apex() -> None:
    assert host_pattern_matches("*.example.com", "a.example.com")
    assert host_pattern_matches("*.example.com", "a.b.example.com")
    assert not host_pattern_matches("*.example.com", "example.com")
    assert not host_pattern_matches("*.example.com", "badexample.com")
    assert host_pattern_matches("*", "anything.test")


def test_exact_beats_longest_wildcard_beats_any() -> None:
    assert TABLE.match("pay.example.com", "/amazon-pay/result").flow is Flow.SUCCESS  # type: ignore[union-attr]
    assert TABLE.match("PAY.example.com.", "/amazon-pay/result").flow is Flow.SUCCESS  # type: ignore[union-attr]
    assert TABLE.match("x.example.com", "/amazon-pay/result").host == "*.example.com"  # type: ignore[union-attr]
    assert TABLE.match("a.shop.example.com", "/amazon-pay/result").host == "*.shop.example.com"  # type: ignore[union-attr]
    assert TABLE.match("other.test", "/amazon-pay/result").host == "*"  # type: ignore[union-attr]


def test_per_path_fallback_to_less_specific_hosts() -> None:
    # pay.example.com has no cancel route of its own; "*" serves it there too.
    route = TABLE.match("pay.example.com", "/amazon-pay/cancel")
    assert route is not None and route.host == "*"
    assert TABLE.match("other.test", "/amazon-pay/error") is None
    assert TABLE.match("pay.example.com", "/unknown") is None


def test_paths_for_host_lists_each_path_once() -> None:
    routes = TABLE.paths_for_host("pay.example.com")
    assert [(r.path, r.host) for r in routes] == [
        ("/amazon-pay/result", "pay.example.com"),
        ("/amazon-pay/cancel", "*"),
        ("/amazon-pay/error", "pay.example.com"),
    ]
    assert [r.path for r in TABLE.paths_for_host("other.test")] == ["/amazon-pay/result", "/amazon-pay/cancel"]


def test_first_route_of_each_flow() -> None:
    assert TABLE.first(Flow.SUCCESS) == Route("pay.example.com", "/amazon-pay/result", Flow.SUCCESS)
    assert TABLE.first(Flow.ERROR) == Route("*.example.com", "/amazon-pay/result", Flow.ERROR)


def test_a_trailing_slash_names_the_route_it_redirects_to() -> None:
    # iOS ignores a trailing slash when it matches the AASA, so a browser may come back there: the page sends
    # it on to the route's own path (the one a proxy in front knows), rather than serving a second path.
    assert TABLE.match("pay.example.com", "/amazon-pay/result/") is None
    assert TABLE.without_slash("pay.example.com", "/amazon-pay/result/") == "/amazon-pay/result"
    assert TABLE.without_slash("pay.example.com", "/amazon-pay/result//") is None
    assert TABLE.without_slash("pay.example.com", "/amazon-pay/result") is None
    assert TABLE.without_slash("elsewhere.test", "/amazon-pay/error/") is None  # only pay.example.com has it
    assert TABLE.without_slash("pay.example.com", "/") is None
