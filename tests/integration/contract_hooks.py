"""schemathesis hooks of the contract test (tests/integration/test_contract.py), loaded through
SCHEMATHESIS_HOOKS.

JSON Schema cannot relate two values of one body, so two rules of the API are not in
api/openapi.yaml's schemas (their descriptions say them): a sku appears once in an order's lines,
and a price rule's valid_until is after its valid_from. The API answers 422 to a body breaking
either; these filters drop such generated bodies, so that every request schemathesis still
calls schema-valid is one the API accepts. They only drop cases: none is changed (the last one
steers the stateful phase, see there)."""
import schemathesis


@schemathesis.hook("filter_case").apply_to(method="POST", path="/v1/orders")
def each_sku_once(ctx, case):
    lines = case.body.get("lines") if isinstance(case.body, dict) else None
    if not isinstance(lines, list):
        return True
    skus = [ln.get("sku") for ln in lines if isinstance(ln, dict)]
    return len(skus) == len(set(map(repr, skus)))


def _ms(v):
    """An instant as the API reads it, or None when it is not one (the API refuses it anyway)."""
    from datetime import datetime, timedelta, timezone

    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)) and float(v).is_integer():
        return int(v)
    if isinstance(v, str):
        if v.lstrip("-").isdigit():
            return int(v)
        try:
            at = datetime.fromisoformat(v.upper().replace("Z", "+00:00"))
            return (at - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
        except (ValueError, TypeError):
            return None
    return None


@schemathesis.hook("filter_case").apply_to(method="POST", path="/v1/prices/{sku}/rules")
def a_window_that_is_not_empty(ctx, case):
    if not isinstance(case.body, dict):
        return True
    start, end = _ms(case.body.get("valid_from")), _ms(case.body.get("valid_until"))
    return start is None or end is None or end > start


CREATING = r"^/v1/(products|users|orders|prices/\{sku\}/rules|inventory/\{sku\}/reservations)$"


@schemathesis.hook("filter_case").apply_to(method="POST", path_regex=CREATING)
def stateful_creations_expect_nothing(ctx, case):
    """The stateful phase follows the links of what a command created: there a creating command
    carries no If-Match (a generated version is almost never the new aggregate's 0, so nearly
    every creation was a 412 and no link was followed). The other phases keep fuzzing it."""
    if case.meta is None or case.meta.phase.name != "stateful":
        return True
    return not any(k.lower() == "if-match" for k in (case.headers or {}))
