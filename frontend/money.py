"""Money as the user types it and as the pages show it. Never a float."""
from decimal import Decimal, InvalidOperation


def parse_price(text: str) -> Decimal | None:
    """'12.5', '$1,200.00', ' 7 ' -> Decimal; anything else -> None.

    Range and precision rules belong to the API; the frontend only needs a
    number to send.
    """
    cleaned = (text or "").strip().replace(",", "").replace(" ", "")
    if cleaned.startswith("$"):
        cleaned = cleaned[1:]
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return value


def format_money(value) -> str:
    """12.5 -> '$12.50'; 1000000 -> '$1,000,000.00'."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"${amount.quantize(Decimal('0.01')):,}"


def price_input_value(value) -> str:
    """The price as prefilled in an edit form: 12.5 -> '12.50'."""
    if value is None or value == "":
        return ""
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    except InvalidOperation:
        return str(value)
