"""E-mail: notification mail out (`outbound`), replies in.

`addresses` mints and checks the reply addresses (`reply+<token>@<reply_domain>`)
that notification mail carries as Reply-To; `parse` reads a MIME message (pure),
`htmltext` turns an HTML body into text (pure), `quotes` strips quoted history
and signatures (pure), `inbound` is the use case (a reply posted as its
recipient). The inbound SMTP listener is an edge: chatd.edge.smtp.
"""
