"""The aiohttp edge, the only code that speaks aiohttp's server side.

`ws` (the WebSocket protocol), `rest` (one module per resource), `static`
(the widget's files from web/), `demo` (the demo bot), `keys` (every typed
application key) and `server` (the application, its services' lifetime).
Each handler decodes, calls one use case of `chatd.chat.Chat` (or of the
attachment and thread services) and encodes; none decides access itself.
"""
