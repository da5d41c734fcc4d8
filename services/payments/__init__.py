"""The payments service: charges a held order by card, records the payment, announces payment:created."""
