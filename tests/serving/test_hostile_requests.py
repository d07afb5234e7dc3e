"""Hostile but fair requests against `grec serve` on loopback (issue 18's findings, each a
regression test), and the service fuzzed from its own OpenAPI document with schemathesis: a bad
request is a 4xx naming what is wrong, in the error shape the document declares; never a 5xx."""

import json
import os

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.modes import GenerationMode

from grec.features.training_set import open_source
from grec.lifecycle.pyfunc import request_frame
from grec.serving import limits
from grec.serving.bento import local_service

TOO_BIG = 2**63  # one past int64


@pytest.fixture(scope="module")
def service(served):
    with local_service(served["home"]) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield {"client": client, "url": url}


@pytest.fixture(scope="module")
def score_rows(served):
    frame = open_source(served["home"] / "set", splits=("test",)).frame.head(3)
    return request_frame(frame, "CTR", served["spec"].input_columns()).to_dict(orient="records")


def refused(response, *names, status=(400, 499)):
    """A 4xx whose body is {"error": str, "detail": str} (the declared shape) naming every one of `names`."""
    assert status[0] <= response.status_code <= status[1], (response.status_code, response.text[:500])
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), body
    for name in names:
        assert name in response.text, (name, response.text[:500])
    return body


RANK = {"customer_id": 1, "flow": "AAL", "use_case": "CTR", "item_ids": [1, 2]}


@pytest.mark.parametrize("change, name", [
    ({"customer_id": TOO_BIG}, "customer_id"),
    ({"item_ids": [1, TOO_BIG]}, "item_ids.1"),
    ({"page_id": TOO_BIG}, "page_id"),
    ({"search_query": "x" * (limits.MAX_TEXT_CHARS + 1)}, "search_query"),
    ({"padding": "x" * 1000}, "padding"),  # an unknown field, whatever its size
    ({"customer_id": True}, "customer_id"),  # JSON's true is no id, nor "12": the schema says integer
    ({"item_ids": [1, "12"]}, "item_ids.1"),
    ({"page_id": False}, "page_id"),
])
def test_rank_refuses_ids_past_int64_long_queries_and_unknown_fields(service, change, name):
    refused(service["client"].post("/rank", json=RANK | change), name)


def test_the_largest_int64_ids_are_cold_start_not_errors(service):
    body = RANK | {"customer_id": limits.MAX_ID, "item_ids": [limits.MAX_ID, 1]}
    response = service["client"].post("/rank", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["cold_start_customer"] and [i["item_id"] for i in answer["items"] if i["cold_start"]] == [limits.MAX_ID]


def test_score_refuses_empty_and_oversized_row_lists_naming_the_limit(service, score_rows):
    client = service["client"]
    refused(client.post("/score", json={"rows": []}), "rows")
    many = {"rows": score_rows[:1] * (limits.MAX_SCORE_ROWS + 1)}
    refused(client.post("/score", json=many), "rows", str(limits.MAX_SCORE_ROWS))


def test_score_refuses_bad_shapes_per_row(service, score_rows, served):
    client = service["client"]
    dim = served["spec"].image_dim
    cases = [
        ({"image_embedding": [0.0] * (dim + 1)}, "image_embedding"),
        ({"viewed_item_ids": [1, 2, 3], "visited_page_ids": [1]}, "visited_page_ids"),
        ({"item_id": TOO_BIG}, "item_id"),
        ({"description": "y" * (limits.MAX_TEXT_CHARS + 1)}, "description"),
    ]
    for change, name in cases:
        rows = [dict(r) for r in score_rows]
        rows[1] |= change
        body = refused(client.post("/score", json={"rows": rows}), name)
        assert "rows.1" in body["detail"], body  # the row it was


def test_score_refuses_an_unknown_top_level_field(service, score_rows):
    refused(service["client"].post("/score", json={"rows": score_rows, "padding": "x" * 1000}), "padding")


def test_a_body_over_the_limit_is_a_413_before_it_is_parsed(service):
    client = service["client"]
    huge = json.dumps(RANK | {"search_query": "x" * (limits.MAX_BODY_BYTES + 10)}).encode()
    refused(client.post("/rank", content=huge, headers={"content-type": "application/json"}), "GREC_SERVE_MAX_BODY_BYTES",
            status=(413, 413))

    def chunks():  # no Content-Length: counted as it streams in
        yield b'{"customer_id": 1, "flow": "AAL", "use_case": "CTR", "item_ids": [1], "search_query": "'
        for _ in range(limits.MAX_BODY_BYTES // (1 << 20) + 2):
            yield b"x" * (1 << 20)
        yield b'"}'
    refused(client.post("/rank", content=chunks(), headers={"content-type": "application/json"}),
            "GREC_SERVE_MAX_BODY_BYTES", status=(413, 413))


@pytest.mark.parametrize("path", ["/rank", "/score"])
def test_a_body_that_is_not_json_is_a_415_naming_its_type(service, path):
    """A form, multipart or text body is refused by its type before it is parsed (multipart was a
    500 from inside BentoML, text/plain was read as JSON); JSON with a charset is JSON."""
    client, body = service["client"], json.dumps(RANK).encode()
    for media in ("multipart/form-data; boundary=x", "text/plain", "application/x-www-form-urlencoded"):
        refused(client.post(path, content=body, headers={"content-type": media}), media.split(";")[0], status=(415, 415))
    refused(client.post(path, files={"customer_id": b"5"}), "multipart/form-data", status=(415, 415))
    assert client.post("/rank", content=body, headers={"content-type": "application/json; charset=utf-8"}).status_code == 200


def test_numbers_far_past_the_training_range_are_refused_by_the_published_bounds(service, score_rows, served):
    """/score took price 1e308 and scored it 0.85: every numerical column is bounded by its training
    range widened RANGE_SLACK times, in the document as minimum and maximum; the rule of the
    histories is in it too."""
    from grec.serving.requests import RANGE_SLACK

    document = service["client"].get("/docs.json").json()["components"]["schemas"]
    row = next(s for name, s in document.items() if name.startswith("ScoreRow"))
    lo, hi = served["spec"].ranges["price"]
    price = row["properties"]["price"]
    assert price["maximum"] == pytest.approx(hi + RANGE_SLACK * max(abs(lo), abs(hi), 1)) and price["minimum"] < lo
    assert "as long as each other" in row["properties"]["viewed_item_ids"]["description"]
    for value in (1e308, -1e308, hi * 100):
        rows = [dict(score_rows[0], price=value)]
        refused(service["client"].post("/score", json={"rows": rows}), "price")
    assert service["client"].post("/score", json={"rows": [dict(score_rows[0], price=hi * 2)]}).status_code == 200


def test_validation_errors_match_the_published_error_schema(service):
    client = service["client"]
    spec = client.get("/docs.json").json()
    declared = spec["components"]["schemas"]["InvalidArgument"]["properties"]
    assert declared["detail"]["type"] == "string" and declared["error"]["type"] == "string"
    body = refused(client.post("/rank", json=RANK | {"flow": "XYZ", "item_ids": [-1]}), "flow", "item_ids")
    assert "unknown flow 'XYZ'" in body["detail"]
    refused(client.post("/rank", content=b"{not json", headers={"content-type": "application/json"}))


def test_metadata_publishes_the_limits(service):
    meta = service["client"].post("/metadata").json()
    assert meta["max_candidates"] == limits.MAX_CANDIDATES and meta["max_score_rows"] == limits.MAX_SCORE_ROWS
    assert meta["max_body_bytes"] == limits.MAX_BODY_BYTES and meta["max_id"] == 2**63 - 1


# -- fuzzing from the service's own OpenAPI document ----------------------------------------------

# per operation and mode: about 1,000 requests in all, under a minute on one core; GREC_FUZZ_EXAMPLES
# for a longer search
EXAMPLES = int(os.environ.get("GREC_FUZZ_EXAMPLES", 150))


def aligned_histories(case):
    """The one rule of /score a JSON schema cannot state (a row's viewed items and visited pages
    are as long as each other; refused otherwise, see above): valid cases made to keep it."""
    rows = case.body.get("rows") if isinstance(case.body, dict) else None
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and isinstance(row.get("viewed_item_ids", []), list) \
                and isinstance(row.get("visited_page_ids", []), list):
            n = min(len(row.get("viewed_item_ids", [])), len(row.get("visited_page_ids", [])))
            for key in ("viewed_item_ids", "visited_page_ids"):
                if key in row:
                    row[key] = row[key][:n]
    return case


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_service_answers_its_own_spec(service, mode):
    """Requests generated from /docs.json for every operation, valid ones (positive) and ones the
    document forbids (negative): no 5xx, statuses, content types and bodies as declared, valid
    requests accepted, invalid ones refused (schemathesis' checks). Reproducible: derandomized."""
    schema = schemathesis.openapi.from_url(f"{service['url']}/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/rank", "/score", "/metadata"}
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not list(operation.body):
            continue  # nothing to break in a GET without parameters
        cases = operation.as_strategy(mode)
        @given(case=cases.map(aligned_histories) if mode == GenerationMode.POSITIVE else cases)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def answers_as_declared(case):
            case.call_and_validate(base_url=service["url"])

        answers_as_declared()


def test_scores_are_finite_for_rows_at_the_bounds(service, score_rows):
    rows = [dict(r) for r in score_rows]
    rows[0] |= {"item_id": limits.MAX_ID, "viewed_item_ids": [limits.MAX_ID], "visited_page_ids": [limits.MAX_ID]}
    response = service["client"].post("/score", json={"rows": rows})
    assert response.status_code == 200, response.text
    assert np.isfinite(response.json()).all()


def test_the_published_document_requires_bodies_and_declares_the_413_and_415(service):
    spec = service["client"].get("/docs.json").json()
    for path in ("/rank", "/score"):
        operation = spec["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True and {"413", "415"} <= set(operation["responses"])
    refused(service["client"].post("/rank"), "customer_id")  # no body at all
