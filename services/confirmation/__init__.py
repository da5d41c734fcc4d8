"""The confirmation service: one email per completed order, through SendGrid or into .eml files."""
