"""A page's correlation id: returned to the browser and sent on to the gateway, so both logs share it."""


def test_the_page_and_its_gateway_calls_share_one_request_id(visitor, fake):
    response = visitor.get("/", headers={"X-Request-ID": "page-1"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "page-1"
    assert fake.request_ids and set(fake.request_ids) == {"page-1"}


def test_a_page_without_one_gets_one_and_passes_it_on(visitor, fake):
    response = visitor.get("/")
    made = response.headers["X-Request-ID"]
    assert len(made) == 32 and set(fake.request_ids) == {made}
