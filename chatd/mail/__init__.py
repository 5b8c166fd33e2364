"""E-mail: reply addresses and replies by e-mail into the order chat.

`addresses` mints and checks the reply addresses (`reply+<token>@<reply_domain>`),
`parse` reads a MIME message (pure), `htmltext` turns an HTML body into text
(pure), `quotes` strips quoted history and signatures (pure), `inbound` is the
use case (a reply posted as its recipient). The SMTP listener is an edge:
chatd.edge.smtp.
"""
