"""One module per messaging platform: verify a webhook, parse it into `InboundMessage`s, send an
`OutboundMessage`. Protocol only: no business rules, nothing of the service but these types."""
