"""Every operator recipe of the README runs through `nameko shell --config config.yaml` and does what it says.

The recipes are read from the README (between ``<!-- recipes:start -->`` and
``<!-- recipes:end -->``, each ``<!-- recipe: name -->`` followed by a python
block); their placeholders are replaced by a real user, order and ticket of the
running app, and each script is piped into the shell.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.orders_support import list_ticket, order, publish_event, signup, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
NAMEKO = str(Path(sys.executable).parent / "nameko")
TICKETING = str(Path(sys.executable).parent / "ticketing")


def readme_recipes() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- recipes:start -->", 1)[1].split("<!-- recipes:end -->", 1)[0]
    found = re.findall(r"<!-- recipe: ([\w-]+) -->\n.*?```python\n(.*?)```", section, flags=re.S)
    return dict(found)


RECIPES = readme_recipes()


def run_in_shell(app, script: str, command=(NAMEKO, "shell", "--config", "config.yaml")) -> str:
    # an empty line ends a `for` block, as it does when typed
    result = subprocess.run(list(command), input=script + "\n", env=app.env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    return result.stdout


def recipe(name: str, **values) -> str:
    script = RECIPES[name]
    for placeholder, value in {"someone@example.com": values.get("email"), "<user id>": values.get("user_id"),
                               "<order id>": values.get("order_id"), "<ticket id>": values.get("ticket_id"),
                               "<parked id>": values.get("parked_id")}.items():
        if value is not None:
            script = script.replace(placeholder, value)
    assert "<" not in script.replace("<=", ""), f"a placeholder of {name} was not filled: {script}"
    return script


def printed_lines(output: str) -> list[str]:
    """What the recipe printed, without the shell's prompts (they share stdout)."""
    lines = []
    for line in output.splitlines():
        while line.startswith((">>> ", "... ")):
            line = line[4:]
        if line.strip() and line.strip() not in (">>>", "..."):
            lines.append(line)
    return lines


def printed(output: str):
    """The value a recipe printed last (a dict or list literal)."""
    return ast.literal_eval(printed_lines(output)[-1])


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


@pytest.fixture(scope="module")
def world(app):
    """A seller and a buyer with one open and one paid order."""
    seller, buyer = signup(app, "seller"), signup(app, "buyer")
    open_ticket, paid_ticket = list_ticket(app, seller, "Open"), list_ticket(app, seller, "Paid")
    open_order = order(app, buyer, open_ticket["id"]).json()
    paid_order = order(app, buyer, paid_ticket["id"]).json()
    assert buyer.post(f"{app.url}/api/payments", json={"token": "tok_visa", "orderId": paid_order["id"]}
                      ).status_code == 201
    mail = Path(app.env["MAIL_OUTBOX_DIR"]) / f"{paid_order['id']}.eml"
    wait_for(mail.exists, timeout=15, what="the first confirmation email")
    return {"buyer": buyer, "open_order": open_order, "paid_order": paid_order, "open_ticket": open_ticket,
            "mail": mail}


def test_every_recipe_of_the_readme_is_tested():
    # every code block of the section is a named recipe (an unnamed one would be run by no test)
    section = (ROOT / "README.md").read_text().split("<!-- recipes:start -->", 1)[1].split("<!-- recipes:end -->")[0]
    assert section.count("```python") == section.count("<!-- recipe: ") == len(RECIPES)
    assert section.count("```") == 2 * len(RECIPES)
    assert set(RECIPES) == {"find-user", "revoke-user", "restore-user", "orders-of-user", "orders-by-status",
                            "count-orders", "get-order", "cancel-order", "release-hold", "show-ticket", "resend-confirmation",
                            "pending-expirations", "list-parked", "replay-parked", "drop-parked", "refund-order"}


def test_find_revoke_and_restore_a_user(app, world):
    buyer = world["buyer"]
    email = buyer.user["email"]
    found = printed(run_in_shell(app, recipe("find-user", email=email.upper())))
    assert found == {"id": buyer.user["id"], "email": email, "revoked": False, "revokedAt": None}

    run_in_shell(app, recipe("revoke-user", email=email))
    assert printed(run_in_shell(app, recipe("find-user", email=email)))["revoked"] is True
    signin = requests.post(f"{app.url}/api/users/signin", json={"email": email, "password": "secret-pass"})
    assert signin.status_code >= 400

    run_in_shell(app, recipe("restore-user", email=email))
    signin = requests.post(f"{app.url}/api/users/signin", json={"email": email, "password": "secret-pass"})
    assert signin.status_code == 200, signin.text


def test_list_orders_by_user_and_by_status_and_count_them(app, world):
    output = run_in_shell(app, recipe("orders-of-user", user_id=world["buyer"].user["id"]))
    assert f"{world['paid_order']['id']} complete" in output
    assert f"{world['open_order']['id']} created" in output
    by_status = recipe("orders-by-status").replace('status="awaiting:payment"', 'status="complete"')
    assert world["paid_order"]["id"] in run_in_shell(app, by_status)
    counts = printed(run_in_shell(app, recipe("count-orders")))
    assert counts["complete"] >= 1 and counts["created"] >= 1 and set(counts) >= {"awaiting:payment", "cancelled"}


def test_show_and_cancel_an_order_and_show_its_ticket(app, world):
    order_id, ticket_id = world["open_order"]["id"], world["open_ticket"]["id"]
    assert printed(run_in_shell(app, recipe("get-order", order_id=order_id)))["status"] == "created"
    assert printed(run_in_shell(app, recipe("show-ticket", ticket_id=ticket_id)))["orderId"] == order_id
    cancelled = printed(run_in_shell(app, recipe("cancel-order", order_id=order_id)))
    assert cancelled["status"] == "cancelled"
    wait_for(lambda: printed(run_in_shell(app, recipe("show-ticket", ticket_id=ticket_id)))["orderId"] is None,
             timeout=15, what="the ticket back on sale")
    # refused for a complete order, with the reason
    refused = subprocess.run([NAMEKO, "shell", "--config", "config.yaml"],
                             input=recipe("cancel-order", order_id=world["paid_order"]["id"]),
                             env=app.env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "Cannot cancel a completed order" in refused.stdout + refused.stderr


def test_release_anyone_s_payment_hold(app):
    """payments' charge attempt holds an order (here: its hold_for_payment, called from the shell);
    the operator lets go of it without knowing the attempt."""
    buyer = signup(app, "holder")
    response = order(app, buyer, list_ticket(app, signup(app, "seller"), "Held")["id"], timeout=30)
    assert response.status_code == 201, response.text
    held = response.json()
    order_id, user_id, attempt = held["id"], buyer.user["id"], uuid.uuid4().hex
    hold = f'print(n.rpc.orders.hold_for_payment("{order_id}", "{user_id}", "{attempt}"))'
    assert printed(run_in_shell(app, hold))["status"] == "awaiting:payment"
    released = printed(run_in_shell(app, recipe("release-hold", order_id=held["id"])))
    assert released["status"] == "created" and released["version"] == 2
    assert printed(run_in_shell(app, recipe("release-hold", order_id=held["id"])))["version"] == 2  # not held: no-op


def test_resend_a_confirmation(app, world):
    mail = world["mail"]
    mail.unlink()
    entry = printed(run_in_shell(app, recipe("resend-confirmation", order_id=world["paid_order"]["id"])))
    assert mail.exists()
    assert entry["state"] == "sent"


def test_pending_expirations(app, world):
    # the world's two orders each left an expiry waiting in a holding queue (the window is 15 min)
    pending = wait_for(lambda: (lambda p: p if p["holding"] >= 2 else None)(
        printed(run_in_shell(app, recipe("pending-expirations")))), timeout=15, what="two pending expiries")
    assert pending["due"] >= 0
    # the same count is the ticketing_pending_expirations gauge (the broker's figures lag up to 5 s)
    metrics_url = json.loads((Path(app.env["VAR_DIR"]).resolve() / "ticketing-up.json").read_text()
                             )["components"]["expiration"]["metrics"]
    gauge = 'ticketing_pending_expirations{queue_kind="holding"}'
    wait_for(lambda: any(line.startswith(gauge) and float(line.split()[-1]) >= 2
                         for line in requests.get(metrics_url, timeout=5).text.splitlines()),
             timeout=15, what="the pending expirations gauge")


def test_ticketing_shell_runs_the_same_recipes(app, world):
    output = run_in_shell(app, recipe("get-order", order_id=world["paid_order"]["id"]), command=(TICKETING, "shell"))
    assert printed(output)["status"] == "complete"
    assert "guest:guest" not in output


def test_list_replay_and_drop_a_parked_message(app, world):
    """A poison ticket:updated (its version is no number) is parked by orders at once; the operator sees it,
    replays it (still poison: parked again, under a new id) and drops it."""
    marker = uuid.uuid4().hex
    publish_event(app.env["AMQP_URI"], "tickets", "ticket:updated",
                  {"eventId": marker, "id": marker, "version": "not a number"})

    def parked_ids():
        return [line.split()[0] for line in printed_lines(run_in_shell(app, recipe("list-parked")))
                if "evt-tickets-ticket:updated" in line]

    first, = wait_for(parked_ids, timeout=15, what="the poison message parked")
    replayed = printed(run_in_shell(app, recipe("replay-parked", parked_id=first)))
    assert [m["id"] for m in replayed] == [first] and replayed[0]["payload"]["eventId"] == marker
    again, = wait_for(lambda: [i for i in parked_ids() if i != first], timeout=15, what="parked again")
    dropped = printed(run_in_shell(app, recipe("drop-parked", parked_id=again)))
    assert [m["payload"]["eventId"] for m in dropped] == [marker]
    assert parked_ids() == []


def test_refund_a_complete_order(app, world):
    order_id = world["paid_order"]["id"]
    refund = printed(run_in_shell(app, recipe("refund-order", order_id=order_id)))
    assert refund["orderId"] == order_id and refund["amountCents"] > 0 and refund["refundId"]
    assert printed(run_in_shell(app, recipe("refund-order", order_id=order_id)))["id"] == refund["id"]  # once
