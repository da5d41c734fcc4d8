"""The landing page and a ticket's pages: new, details, edit, purchase."""
import re
from decimal import Decimal

import pytest

from tests.unit.frontend.frontend_pages_helpers import Visitor, field_block, text


def test_landing_page_with_no_tickets_invites_you_to_sell(visitor):
    html = text(visitor.get("/"))
    assert "No tickets on sale right now" in html
    assert 'href="/tickets/new"' in html


def test_landing_page_lists_tickets_on_sale_newest_first_with_money_prices(visitor, fake):
    seller = fake.add_user("seller@example.com")
    older = fake.add_ticket(seller, "Jazz night", "12.5")
    newer = fake.add_ticket(seller, "Opera & ballet <gala>", "1000000")
    reserved = fake.add_ticket(seller, "Gone already", "5")
    fake.add_order(fake.add_user("someone@example.com"), reserved)
    html = text(visitor.get("/"))
    assert "$12.50" in html and "$1,000,000.00" in html
    assert "Opera &amp; ballet &lt;gala&gt;" in html  # escaped, never raw HTML
    assert f'href="/tickets/{older["id"]}"' in html and f'href="/tickets/{newer["id"]}"' in html
    assert html.index(newer["id"]) < html.index(older["id"])
    assert "Gone already" not in html


def test_landing_page_pages_through_many_tickets(make_app, fake):
    visitor = Visitor(make_app(TICKETS_PAGE_SIZE=2).test_client())
    seller = fake.add_user("seller@example.com")
    for n in range(5):
        fake.add_ticket(seller, f"Show {n}", "10")
    first = text(visitor.get("/"))
    assert "Show 4" in first and "Show 3" in first and "Show 2" not in first
    more = re.search(r'href="(/\?cursor=[^"]+)"[^>]*>More tickets', first).group(1)
    second = text(visitor.get(more.replace("&amp;", "&")))
    assert "Show 2" in second and "Show 1" in second and "Show 4" not in second
    assert "Newest tickets" in second
    assert visitor.get("/?cursor=bogus").headers["Location"] == "/"


def test_selling_needs_an_account(visitor):
    response = visitor.get("/tickets/new")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/signin?next=%2Ftickets%2Fnew"


def test_sell_form_has_labelled_fields(visitor):
    visitor.signup("seller@example.com")
    html = text(visitor.get("/tickets/new"))
    assert '<label for="title">Title</label>' in html and '<label for="price">Price</label>' in html


def test_selling_a_ticket_redirects_to_its_page(visitor, fake):
    visitor.signup("seller@example.com")
    response = visitor.submit("/tickets/new", "/tickets/new", {"title": "  Arctic Monkeys, MSG  ", "price": "$1,250.5"})
    assert response.status_code == 302
    ticket = next(iter(fake.tickets.values()))
    assert response.headers["Location"] == f"/tickets/{ticket['id']}"
    assert ticket["title"] == "Arctic Monkeys, MSG" and ticket["price"] == Decimal("1250.5")
    html = text(visitor.get(response.headers["Location"]))
    assert "Arctic Monkeys, MSG" in html and "$1,250.50" in html
    assert "Your ticket is on sale" in html
    assert f'href="/tickets/{ticket["id"]}/edit"' in html
    assert ">Purchase<" not in html  # nobody buys their own ticket


def test_the_price_goes_to_the_api_as_an_exact_json_number(visitor, fake):
    visitor.signup("seller@example.com")
    fake.calls.clear()
    visitor.submit("/tickets/new", "/tickets/new", {"title": "Exact", "price": "0.10"})
    ticket = next(iter(fake.tickets.values()))
    assert str(ticket["price"]) == "0.10"


def test_sell_form_errors_are_shown_next_to_fields_and_values_kept(visitor, fake):
    visitor.signup("seller@example.com")
    response = visitor.submit("/tickets/new", "/tickets/new", {"title": " ", "price": "cheap"})
    assert response.status_code == 400
    html = text(response)
    assert "Enter a title" in field_block(html, "title")
    price = field_block(html, "price")
    assert "Enter a price" in price and 'value="cheap"' in price
    assert fake.tickets == {}


def test_sell_form_shows_the_api_errors_next_to_fields(visitor, fake):
    visitor.signup("seller@example.com")
    response = visitor.submit("/tickets/new", "/tickets/new", {"title": "Rock", "price": "12.345"})
    assert response.status_code == 400
    html = text(response)
    assert "at most 2 decimals" in field_block(html, "price")
    assert 'value="Rock"' in field_block(html, "title")
    response = visitor.submit("/tickets/new", "/tickets/new", {"title": "x" * 201, "price": "-3"})
    html = text(response)
    assert "at most 200 characters" in field_block(html, "title")
    assert "greater than 0" in field_block(html, "price")


def test_ticket_page_signed_out_offers_to_sign_in_to_purchase(visitor, fake):
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "20")
    html = text(visitor.get(f"/tickets/{ticket['id']}"))
    assert "Jazz" in html and "$20.00" in html and "On sale" in html
    assert f"/auth/signin?next=/tickets/{ticket['id']}" in html
    assert "Edit" not in html


def test_ticket_page_signed_in_has_a_purchase_button(visitor, fake):
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "20")
    visitor.signup()
    html = text(visitor.get(f"/tickets/{ticket['id']}"))
    assert f'action="/tickets/{ticket["id"]}/purchase"' in html and ">Purchase<" in html


def test_unknown_ticket_is_a_404_page_in_the_site_look(visitor):
    response = visitor.get("/tickets/doesnotexist")
    assert response.status_code == 404
    html = text(response)
    assert "Page not found" in html and 'class="site-header"' in html and "app.css" in html


def test_a_reserved_ticket_says_so_to_others_and_links_the_buyer_to_the_order(app, fake):
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "20")
    buyer, other = Visitor(app.test_client()), Visitor(app.test_client())
    buyer.signup("buyer@example.com")
    other.signup("other@example.com")
    order_id = buyer.submit(f"/tickets/{ticket['id']}", f"/tickets/{ticket['id']}/purchase", {}).headers["Location"]
    html = text(other.get(f"/tickets/{ticket['id']}"))
    assert "Reserved or sold" in html and "Someone has reserved or bought this ticket" in html
    assert ">Purchase<" not in html
    html = text(buyer.get(f"/tickets/{ticket['id']}"))
    assert "You have an order for this ticket" in html and f'href="{order_id}"' in html


def test_purchase_reserves_and_redirects_to_the_order(visitor, fake):
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "20")
    visitor.signup()
    response = visitor.submit(f"/tickets/{ticket['id']}", f"/tickets/{ticket['id']}/purchase", {})
    assert response.status_code == 302
    order = next(iter(fake.orders.values()))
    assert response.headers["Location"] == f"/orders/{order['id']}"
    assert order["ticketId"] == ticket["id"]


def test_purchase_of_a_ticket_someone_just_reserved_explains_why(app, fake):
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "20")
    slow, fast = Visitor(app.test_client()), Visitor(app.test_client())
    slow.signup("slow@example.com")
    fast.signup("fast@example.com")
    token = slow.csrf_token(f"/tickets/{ticket['id']}")  # the page is open with its Purchase button
    fast.submit(f"/tickets/{ticket['id']}", f"/tickets/{ticket['id']}/purchase", {})
    response = slow.client.post(f"/tickets/{ticket['id']}/purchase", data={"csrf_token": token})
    assert response.status_code == 409
    assert "Ticket is already reserved" in text(response)
    assert len(fake.orders) == 1


def test_purchase_signed_out_goes_to_sign_in_and_back(visitor, fake):
    # e.g. the page was opened while signed in and the session ended since
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "20")
    response = visitor.submit("/auth/signin", f"/tickets/{ticket['id']}/purchase", {})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/auth/signin?next=%2Ftickets%2F{ticket['id']}"
    assert fake.orders == {}


def test_edit_is_for_the_owner_only(app, fake):
    owner, other = Visitor(app.test_client()), Visitor(app.test_client())
    owner.signup("seller@example.com")
    other.signup("other@example.com")
    ticket_id = owner.sell("Jazz", "20")
    html = text(owner.get(f"/tickets/{ticket_id}/edit"))
    assert 'value="Jazz"' in field_block(html, "title") and 'value="20.00"' in field_block(html, "price")
    response = other.get(f"/tickets/{ticket_id}/edit")
    assert response.status_code == 403 and "That is not yours" in text(response)
    assert Visitor(app.test_client()).get(f"/tickets/{ticket_id}/edit").status_code == 302


def test_editing_saves_and_redirects_or_shows_errors_next_to_fields(visitor, fake):
    visitor.signup("seller@example.com")
    ticket_id = visitor.sell("Jazz", "20")
    response = visitor.submit(f"/tickets/{ticket_id}/edit", f"/tickets/{ticket_id}/edit", {"title": "", "price": "0"})
    assert response.status_code == 400
    html = text(response)
    assert "Title is required" in field_block(html, "title") and "greater than 0" in field_block(html, "price")
    response = visitor.submit(f"/tickets/{ticket_id}/edit", f"/tickets/{ticket_id}/edit", {"title": "Jazz trio", "price": "22.5"})
    assert response.status_code == 302 and response.headers["Location"] == f"/tickets/{ticket_id}"
    html = text(visitor.get(f"/tickets/{ticket_id}"))
    assert "Jazz trio" in html and "$22.50" in html and "Your changes are saved" in html


def test_a_reserved_ticket_cannot_be_edited(visitor, fake):
    visitor.signup("seller@example.com")
    ticket_id = visitor.sell("Jazz", "20")
    token = visitor.csrf_token(f"/tickets/{ticket_id}/edit")
    fake.add_order(fake.add_user("buyer@example.com"), fake.tickets[ticket_id])
    html = text(visitor.get(f"/tickets/{ticket_id}/edit"))
    assert "cannot be edited now" in html and "<fieldset class=\"plain\" disabled>" in html
    html = text(visitor.get(f"/tickets/{ticket_id}"))
    assert "A buyer has reserved or bought it" in html and f"/tickets/{ticket_id}/edit" not in html
    response = visitor.client.post(
        f"/tickets/{ticket_id}/edit", data={"csrf_token": token, "title": "New", "price": "30"}
    )
    assert response.status_code == 409
    assert "Cannot edit a reserved ticket" in text(response)
    assert fake.tickets[ticket_id]["title"] == "Jazz"


@pytest.mark.parametrize("sold, label, says", [(True, "Sold", "has been sold"), (False, "Reserved", "Someone has reserved this ticket")])
def test_a_gateway_that_tells_sold_from_reserved_is_believed(visitor, fake, sold, label, says):
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "20")
    fake.add_order(fake.add_user("buyer@example.com"), ticket, status="complete" if sold else "created")
    ticket["sold"] = sold
    html = text(visitor.get(f"/tickets/{ticket['id']}"))
    assert f">{label}</span>" in html and says in html


def test_the_sell_form_carries_an_idempotency_key_so_a_resubmission_lists_one_ticket(visitor, fake):
    from .frontend_pages_helpers import CSRF, IDEMPOTENCY_KEY

    visitor.signup("seller@example.com")
    html = text(visitor.get("/tickets/new"))
    key, token = IDEMPOTENCY_KEY.search(html).group(1), CSRF.search(html).group(1)
    assert IDEMPOTENCY_KEY.search(text(visitor.get("/tickets/new"))).group(1) != key  # one per rendered form
    form = {"csrf_token": token, "idempotency_key": key, "title": "Once", "price": "10"}
    first = visitor.client.post("/tickets/new", data=form)
    again = visitor.client.post("/tickets/new", data=form)  # the browser retries after a timeout
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    assert [t["title"] for t in fake.tickets.values()] == ["Once"]
