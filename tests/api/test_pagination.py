"""Every paginated list: a page past the end is a 404, whatever its number (PRODUCT.md "API conventions")."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from customers import pagination
from flows.services import flow_create
from tests.campaigns.conftest import make_campaign, make_customers, static_segment

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
LISTS = sorted(
    path
    for path, methods in SCHEMA["paths"].items()
    if any(p.get("name") == "page" for p in methods.get("get", {}).get("parameters", []))
)
PAST_THE_END = ["3", "4611686018427387904", str(10**30), "9" * 4000]
NOT_A_PAGE = ["0", "-1", "abc", "1e3", "1.5", "9" * 5000]


@pytest.fixture
def objects(tenant):
    customers = make_customers(2, prefix="page")
    segment = static_segment(customers)
    campaign = make_campaign(segment)
    flow = flow_create(name="Pages")
    return {"customers": customers[0].pk, "segments": segment.pk, "campaigns": campaign.pk, "flows": flow.pk}


def _url(path, objects):
    return path.replace("{id}", str(objects.get(path.split("/")[2], 1)))


def test_it_finds_the_lists():
    assert {"/api/customers", "/api/segments", "/api/campaigns", "/api/campaigns/{id}/recipients"} <= set(
        LISTS
    )


@pytest.mark.parametrize("path", LISTS)
def test_it_answers_404_for_a_page_past_the_end_whatever_its_number(api, objects, path):
    url = _url(path, objects)
    assert api.get(url, {"page_size": 1}).status_code == 200
    for page in PAST_THE_END + NOT_A_PAGE:
        response = api.get(url, {"page": page, "page_size": 1})
        assert response.status_code == 404, (url, page[:30], response.status_code)


def test_it_answers_404_past_the_end_of_a_list_whose_count_is_only_an_estimate(api, objects, monkeypatch):
    # The planner expects a million customers where there are two: the count says so (flagged as an
    # estimate), but a page that has no rows is still a 404, not an empty page.
    monkeypatch.setattr(pagination.EstimatingPaginator, "planner_estimate", 1_000_000)
    first = api.get("/api/customers", {"page_size": 1})
    assert first.status_code == 200 and first["X-Count-Estimated"] == "true"
    assert api.get("/api/customers", {"page_size": 1, "page": 2}).status_code == 200
    assert api.get("/api/customers", {"page_size": 1, "page": 3}).status_code == 404
    assert api.get("/api/customers", {"page_size": 1, "page": str(10**30)}).status_code == 404
