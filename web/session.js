// @ts-check
/*! chatd session: the order chat's protocol side, without any DOM.
 *
 * One Session is one user in one order over one WebSocket: it authenticates,
 * joins, resumes after a reconnect with `since` (the highest seq it holds),
 * drops frames it already has (by seq), keeps unsent messages in an outbox
 * that is retried with the same `client_id` (and kept in a Storage across
 * reloads), and tracks what the view shows: people, order state, unread,
 * receipts, typing. It tells the view through events (`on`).
 *
 * Browsers get it from chatd's /widget.js (with the view) or /session.js
 * (alone, as the global `ChatdSession`); node gets it with require(). The
 * socket class, storage, clock and randomness are options, so tests drive it
 * without a browser. See docs/widget.md.
 */

/**
 * @typedef {{id: string, name: string, role: string}} User
 * @typedef {{id: string, name: string, role: string, online: boolean, avatar_url?: string | null}} Person
 * @typedef {{id: string, name: string, mime?: string, size?: number}} AttachmentRef
 * @typedef {{open?: boolean, reason?: string | null, by?: string, by_name?: string, ts?: number}} Dispute
 * A status this user may move the order to (its workflow's label and tone).
 * @typedef {{status: string, label: string, tone: string}} NextStatus
 * The buyer waits for the supplier side since their message `seq` (supplier side, staff, bots only).
 * @typedef {{seq: number, since: number, due_at: number | null, overdue: boolean}} AwaitingReply
 * @typedef {{
 *   order?: string, seq: number, ts: number, kind: string, text?: string, status?: string,
 *   client_id?: string | null, sender?: User | null, attachments?: AttachmentRef[]
 * }} Message
 * @typedef {'queued' | 'sending' | 'failed'} OutboxState
 * @typedef {{
 *   client_id: string, text: string, kind: 'text' | 'note', created: number, state: OutboxState,
 *   error?: string | null, attachments: AttachmentRef[]
 * }} OutboxItem
 * @typedef {'connecting' | 'online' | 'reconnecting' | 'closed'} State
 * @typedef {Record<string, any>} Frame
 *
 * What the session needs of a WebSocket (the browser's, or a test's stand-in).
 * @typedef {{
 *   readyState: number,
 *   send(data: string): void,
 *   close(code?: number, reason?: string): void,
 *   onopen: ((ev?: any) => void) | null,
 *   onmessage: ((ev: {data: any}) => void) | null,
 *   onclose: ((ev: {code: number, reason?: string}) => void) | null,
 *   onerror: ((ev?: any) => void) | null
 * }} SocketLike
 * @typedef {new (url: string) => SocketLike} SocketClass
 *
 * What the session needs of localStorage.
 * @typedef {{getItem(key: string): string | null, setItem(key: string, value: string): void,
 *            removeItem(key: string): void}} StorageLike
 *
 * Time, injectable so tests need no waiting.
 * @typedef {{now(): number, setTimeout(fn: () => void, ms: number): any, clearTimeout(id: any): void}} Clock
 *
 * @typedef {object} SessionOptions
 * @property {string} url the WebSocket URL (see wsUrlOf)
 * @property {string} order
 * @property {string | (() => string | Promise<string>)} token called again on every reconnect when a function
 * @property {number} [pageSize] messages per history page (1..200, default 50)
 * @property {number} [maxLength] longest text send() accepts (default 4000)
 * @property {StorageLike | null} [storage] keeps unsent messages across reloads; null/absent: memory only
 * @property {SocketClass} [WebSocket] default: the global WebSocket
 * @property {Clock} [clock] default: Date.now and the global timers
 * @property {() => number} [random] for the reconnect jitter; default Math.random
 * @property {() => boolean} [canRead] whether the reader sees the page now (a `read` is sent only then)
 * @property {(() => number) | null} [seenSeq] the newest seq on screen at the moment a `read` goes
 *   (asked again when the debounce ends, so what the view reported earlier cannot outlive a scroll)
 *
 * @typedef {{
 *   state: {state: State},
 *   ready: {user: User},
 *   joined: {first: boolean, unread: number, readSeq: number, lastSeq: number},
 *   reset: {},
 *   remove: {seqs: number[]},
 *   insert: {message: Message, own: boolean, live: boolean, older: boolean, source: 'live' | 'history' | 'ack'},
 *   message: {message: Message, own: boolean, live: boolean},
 *   outbox: {item: OutboxItem, added: boolean},
 *   settled: {item: OutboxItem},
 *   paging: {loading: boolean},
 *   people: {people: Map<string, Person>},
 *   order: {status: string | null, dispute: Dispute | null, changed: boolean},
 *   reply: {awaiting: AwaitingReply | null},
 *   unread: {count: number, total: number | null | undefined},
 *   receipt: {user: string, seq: number},
 *   typing: {names: string[]},
 *   error: {code: string, message: string, ref?: string | null, fatal?: boolean, action?: string | null}
 * }} SessionEvents
 */

var ChatdSession = (function () {
  /** Statuses as `joined` and `order` list them (`next_statuses`, `statuses`). @param {any} list */
  function statusList(list) {
    return Array.isArray(list) ? list.filter(function (/** @type {any} */ n) {
      return n && typeof n.status === 'string';
    }).map(function (/** @type {any} */ n) {
      return { status: n.status, label: String(n.label || n.status), tone: String(n.tone || 'neutral') };
    }) : [];
  }

  'use strict';

  var NOTE_WRITERS = ['supplier', 'sales_rep', 'staff', 'bot'];
  var NOTE_READERS = ['supplier', 'sales_rep', 'staff', 'bot']; // the roles the server sends notes to
  var SUPPLIER_SIDE = ['supplier', 'sales_rep', 'staff'];   // may say "no reply needed"
  var DISPUTE_OPENERS = ['buyer', 'staff'];
  var HELP_ASKERS = ['buyer', 'supplier', 'sales_rep'];
  var CLOSED_WRITERS = ['staff', 'bot'];                     // may still post in a closed chat
  var TYPING_REFRESH_MS = 3000;   // re-send `typing: true` at most this often (server TTL is 6 s)
  var TYPING_IDLE_MS = 4000;      // no keystroke for this long: `typing: false`
  var TYPING_SHOW_MS = 8000;      // safety net: hide someone's indicator without news
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_CAP_MS = 15000;
  var HEARTBEAT_MS = 5000;        // how often the connection's liveness is checked
  var PING_AFTER_MS = 20000;      // nothing heard for this long: send `ping`
  var DEAD_AFTER_MS = 35000;      // ... and still nothing: the socket is dead, reconnect
  var RATE_LIMITED_CLOSE_MS = 10000; // after close 4429, wait at least this long
  var READ_DEBOUNCE_MS = 250;
  var RETRY_LATER_MS = 3000;      // rate_limited / unavailable: retry the send after this
  var RETRYABLE = ['rate_limited', 'unavailable', 'internal'];
  var JOIN_FINAL = ['not_found', 'forbidden', 'bad_request'];  // a `join` refused for good (asking again changes nothing); any other error is tried again

  /** @type {Clock} */
  var SYSTEM_CLOCK = {
    now: function () { return Date.now(); },
    setTimeout: function (fn, ms) { return setTimeout(fn, ms); },
    clearTimeout: function (id) { clearTimeout(id); }
  };

  /** @returns {string} a random (v4) UUID, the client_id of a send */
  function uuid() {
    var c = /** @type {any} */ (globalThis).crypto;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (/** @type {number} */ x) {
      return (x + 0x100).toString(16).slice(1);
    }).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  /**
   * The chatd base URL (http[s]) -> its WebSocket endpoint (ws[s]://…/ws).
   * @param {string} base
   * @param {string} [relativeTo] resolves a relative base (the page's URL)
   */
  function wsUrlOf(base, relativeTo) {
    var u = new URL(base, relativeTo);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.pathname = u.pathname.replace(/\/+$/, '') + '/ws';
    u.search = '';
    u.hash = '';
    return u.href;
  }

  class Session {
    /** @param {SessionOptions} opts */
    constructor(opts) {
      if (!opts || !opts.order) throw new TypeError('ChatdSession: options.order required');
      if (!opts.token) throw new TypeError('ChatdSession: options.token required');
      if (!opts.url) throw new TypeError('ChatdSession: options.url required');
      this.opts = opts;
      this.order = String(opts.order);
      this.url = opts.url;
      this.pageSize = Math.max(1, Math.min(200, opts.pageSize || 50));
      this.maxLength = opts.maxLength || 4000;
      this.storage = opts.storage || null;
      /** @type {SocketClass} */
      this.Socket = opts.WebSocket || /** @type {any} */ (globalThis).WebSocket;
      this.clock = opts.clock || SYSTEM_CLOCK;
      this.random = opts.random || Math.random;
      this.canRead = opts.canRead || function () { return true; };
      this.seenSeq = opts.seenSeq || null;

      // connection
      /** @type {SocketLike | null} */
      this.ws = null;
      /** @type {State} */
      this.state = 'connecting';
      this.ready = false;           // authenticated
      this.live = false;            // joined: sends go out, events come in
      this.joining = false;
      this.everJoined = false;
      this.attempt = 0;
      this.lastRx = 0;
      /** @type {string | null} why the chat closed for good */
      this.fatal = null;
      this.authRetried = false;
      this.destroyed = false;
      this.started = false;

      // model
      /** @type {User | null} */
      this.me = null;
      /** @type {string | null} the user's role in this order */
      this.role = null;
      /** @type {string | null} */
      this.status = null;
      /** @type {Dispute | null} */
      this.dispute = null;
      this.workflow = 'free';
      /** @type {string | null} the status's label in the workflow */
      this.statusLabel = null;
      this.statusTone = 'neutral';
      /** @type {NextStatus[]} what this user's role may move the order to now */
      this.nextStatuses = [];
      /** @type {Array<{status: string, label: string, tone: string}>} */
      this.statuses = [];
      this.closed = false;
      /** @type {string | null} */
      this.closedReason = null;
      /** @type {AwaitingReply | null} */
      this.awaitingReply = null;
      /** @type {Map<string, string>} client_id -> the action (set_status, dispute_open, dispute_close) awaiting its answer */
      this.actions = new Map();
      /** @type {{code: string, message: string} | null} the server's reason for refusing the token */
      this.authError = null;
      /** @type {Map<string, Person>} */
      this.people = new Map();
      /** @type {Map<string, string>} id -> name, learnt from senders (for dispute "by") */
      this.names = new Map();
      /** @type {Map<number, Message>} every stored message held, by seq */
      this.msgs = new Map();
      /** @type {Map<string, OutboxItem>} unacknowledged sends, by client_id */
      this.outbox = new Map();
      /** @type {Set<string>} client_ids this tab saw stored (or gave up): kept out of the shared Storage */
      this.settledIds = new Set();
      /** @type {number | null} */
      this.oldestSeq = null;
      this.newestSeq = 0;
      this.liveAfter = 0;           // seq above which messages are live (new, not replay)
      this.noMoreBefore = false;
      this.loadingMore = false;
      this.unread = 0;
      this.readSeq = 0;             // our read marker as far as we know
      this.pendingRead = 0;
      /** @type {Map<string, number>} user id -> the seq they have read */
      this.receipts = new Map();
      /** @type {Map<string, {name: string, timer: any}>} who else is typing */
      this.typers = new Map();
      this.typingActive = false;
      this.typingNote = false; // what the active `typing` is about: a note (told to note readers only)
      this.typingSentAt = 0;

      /** @type {Record<string, any>} */
      this.timers = {};
      /** @type {Record<string, Array<(detail: any) => void>>} */
      this.handlers = {};
    }

    // --- events -----------------------------------------------------------------------

    /**
     * Listen to a session event; returns a function that unsubscribes.
     * @template {keyof SessionEvents} K
     * @param {K} name
     * @param {(detail: SessionEvents[K]) => void} fn
     * @returns {() => void}
     */
    on(name, fn) {
      var list = this.handlers[name] || (this.handlers[name] = []);
      list.push(fn);
      return function () {
        var i = list.indexOf(fn);
        if (i >= 0) list.splice(i, 1);
      };
    }

    /**
     * @template {keyof SessionEvents} K
     * @param {K} name
     * @param {SessionEvents[K]} detail
     */
    _emit(name, detail) {
      var list = (this.handlers[name] || []).slice();
      for (var i = 0; i < list.length; i++) {
        // A listener's bug must not stop the protocol: report it, carry on.
        try { list[i](detail); } catch (e) { setTimeout(function () { throw e; }, 0); }
      }
    }

    /**
     * @param {string} name
     * @param {(this: Session) => void} fn
     * @param {number} ms
     */
    _timer(name, fn, ms) {
      var self = this, clock = this.clock;
      clock.clearTimeout(this.timers[name]);
      this.timers[name] = clock.setTimeout(function () { delete self.timers[name]; fn.call(self); }, ms);
    }

    /** @param {string} name */
    _cancel(name) {
      this.clock.clearTimeout(this.timers[name]);
      delete this.timers[name];
    }

    // --- public API -------------------------------------------------------------------

    /** Connect, and keep checking that the connection is alive. */
    start() {
      if (this.started) return;
      this.started = true;
      this._heartbeat();
      this._connect();
    }

    /** The connection token (a fresh one, when the option is a function). */
    token() {
      var tok = this.opts.token;
      return new Promise(function (resolve) { resolve(typeof tok === 'function' ? tok() : tok); })
        .then(function (t) { return String(t); });
    }

    /**
     * Queue a message and send it when joined; returns its client_id (null: not accepted).
     * @param {string} text
     * @param {{note?: boolean, attachments?: AttachmentRef[]}} [options]
     * @returns {string | null}
     */
    send(text, options) {
      text = String(text == null ? '' : text).trim();
      var atts = (options && options.attachments) || [];
      if ((!text && !atts.length) || text.length > this.maxLength || this.fatal) return null;
      var note = !!(options && options.note) && this.mayWriteNotes();
      /** @type {OutboxItem} */
      var item = { client_id: uuid(), text: text, kind: note ? 'note' : 'text', created: this.clock.now(), state: 'queued',
                   attachments: atts };
      this.outbox.set(item.client_id, item);
      this._saveOutbox();
      this._emit('outbox', { item: item, added: true });
      // an older one waiting for its retry (rate_limited) goes first: this one goes with it
      var behind = false;
      this.outbox.forEach(function (it) { if (it !== item && it.state === 'queued') behind = true; });
      if (!behind) this._transmit(item);
      return item.client_id;
    }

    /** Send a message that failed for good once more (same client_id). @param {string} clientId */
    retry(clientId) {
      var item = this.outbox.get(clientId);
      if (!item) return;
      item.state = 'queued';
      item.error = null;
      this._saveOutbox();
      this._transmit(item);
    }

    /** Give up a message that failed. @param {string} clientId */
    discard(clientId) { this._settle(clientId); }

    /** Change the order status (supplier, staff, bot). @param {string} status @param {string} [text] */
    setStatus(status, text) {
      /** @type {Frame} */
      var f = { type: 'set_status', order: this.order, status: String(status), client_id: uuid() };
      if (text) f.text = String(text);
      return this._action('set_status', f);
    }

    /** Open (buyer, staff) or close (staff, opener) the order's dispute. @param {string} [reason] */
    openDispute(reason) {
      return this._action('dispute_open', { type: 'dispute', order: this.order, action: 'open', client_id: uuid(), reason: reason || null });
    }
    /** @param {string} [reason] */
    closeDispute(reason) {
      return this._action('dispute_close', { type: 'dispute', order: this.order, action: 'close', client_id: uuid(), reason: reason || null });
    }

    /** Ask the platform's staff for help (participants): a message, and the order in the staff queue. @param {string} [text] */
    askHelp(text) {
      return this._action('help', { type: 'help', order: this.order, client_id: uuid(), text: text || null });
    }

    /** The buyer's message `seq` (or an earlier one the wait started at) asks nothing: end the wait. @param {number} seq */
    noReplyNeeded(seq) {
      return this._sendFrame({ type: 'no_reply_needed', order: this.order, seq: seq });
    }

    /**
     * A frame whose refusal the view shows (an `error` naming its client_id comes back with `action`).
     * @param {string} kind @param {Frame} frame
     */
    _action(kind, frame) {
      if (!this._sendFrame(frame)) {
        this._emit('error', { code: 'offline', message: 'Not connected: try again in a moment.', action: kind });
        return false;
      }
      this.actions.set(frame.client_id, kind);
      return true;
    }

    // --- what this user may do (the server decides; these only choose what to offer) ---

    /** Roles other than staff and bots cannot post in a closed chat. */
    mayPost() {
      return !this.closed || CLOSED_WRITERS.indexOf(String(this.role)) >= 0;
    }

    /** Not bound to mayPost(): the buyer may always open a dispute, and it reopens a closed chat. */
    mayOpenDispute() {
      return DISPUTE_OPENERS.indexOf(String(this.role)) >= 0 && !(this.dispute && this.dispute.open);
    }

    mayCloseDispute() {
      var d = this.dispute;
      return !!(d && d.open) && (this.role === 'staff' || !!(this.me && d.by === this.me.id)) && this.mayPost();
    }

    /** The buyer's "Confirm receipt": the workflow lets them move the order to `delivered`. */
    mayConfirmReceipt() {
      return this.role === 'buyer' && this.nextStatuses.some(function (n) { return n.status === 'delivered'; });
    }

    /** Participants ask for help (staff and bots answer it); not in a closed chat. */
    mayAskHelp() {
      return HELP_ASKERS.indexOf(String(this.role)) >= 0 && this.mayPost();
    }

    mayMarkNoReply() {
      return SUPPLIER_SIDE.indexOf(String(this.role)) >= 0 && !!this.awaitingReply;
    }

    /** The newest buyer message held at or after the wait's start (what "No reply needed" marks). */
    noReplySeq() {
      var a = this.awaitingReply;
      if (!a) return null;
      var best = a.seq, self = this;
      this.msgs.forEach(function (m, seq) {
        if (seq > best && m.kind === 'text' && m.sender && self.people.has(m.sender.id) &&
            (/** @type {Person} */ (self.people.get(m.sender.id))).role === 'buyer') best = seq;
      });
      return best;
    }

    /** Whether an earlier history page may exist. */
    canLoadMore() {
      return !this.noMoreBefore && this.oldestSeq !== null && this.oldestSeq > 1;
    }

    /** Ask for the page before the oldest message held; false if not sent. */
    loadMore() {
      if (this.loadingMore || !this.live) return false;
      if (this._sendFrame({ type: 'history', order: this.order, before: this.oldestSeq, limit: this.pageSize })) {
        this.loadingMore = true;
        this._emit('paging', { loading: true });
        return true;
      }
      return false;
    }

    /**
     * The newest message on screen now is `seq`: move the read marker there (one
     * `read` per READ_DEBOUNCE_MS, with what is on screen when it goes, while canRead()).
     * @param {number} seq
     */
    read(seq) {
      if (!this.live) return;
      this.pendingRead = seq; // what scrolled away meanwhile was not read
      if (seq <= this.readSeq || this.timers.read) return;
      this._timer('read', function () {
        var s = this.seenSeq ? Math.min(this.pendingRead, this.seenSeq()) : this.pendingRead;
        this.pendingRead = 0;
        if (s > this.readSeq && this.canRead() && this._sendFrame({ type: 'read', order: this.order, seq: s })) {
          this.readSeq = s;
        }
      }, READ_DEBOUNCE_MS);
    }

    /**
     * The user typed (the field is not empty): `typing: true`, refreshed, stopped when idle.
     * `note`: an internal note is being written, which the server tells note readers only
     * (a switch between the two kinds is sent at once).
     * @param {boolean} [note]
     */
    typing(note) {
      var now = this.clock.now();
      note = !!note;
      var stale = !this.typingActive || now - this.typingSentAt > TYPING_REFRESH_MS || note !== this.typingNote;
      if (stale && this.live) {
        var frame = note ? { type: 'typing', order: this.order, active: true, note: true }
          : { type: 'typing', order: this.order, active: true };
        if (this._sendFrame(frame)) {
          this.typingActive = true;
          this.typingNote = note;
          this.typingSentAt = now;
        }
      }
      this._timer('typingIdle', this.stopTyping, TYPING_IDLE_MS);
    }

    /** The user stopped typing (sent, left the field, emptied it). */
    stopTyping() {
      this._cancel('typingIdle');
      if (this.typingActive) {
        this.typingActive = false;
        this._sendFrame({ type: 'typing', order: this.order, active: false });
      }
    }

    /** The page came back (visible): check the connection at once. */
    wake() {
      if (this.ws && this.ready) this._ping();
    }

    /** The network came back: reconnect now instead of waiting for the backoff. */
    reconnectNow() {
      if (!this.ws && !this.fatal && !this.destroyed && this.started) {
        this._cancel('reconnect');
        this.attempt = 0;
        this._connect();
      }
    }

    /** The user's display name for an id (people, then senders seen). @param {string | undefined} id */
    nameOf(id) {
      var p = id != null ? this.people.get(id) : undefined;
      if (p) return p.name;
      if (this.me && id === this.me.id) return this.me.name;
      return (id != null && this.names.get(id)) || String(id);
    }

    mayWriteNotes() {
      return NOTE_WRITERS.indexOf(String(this.role)) >= 0;
    }

    /** Whether the server sends this role notes (a buyer never gets one). */
    mayReadNotes() {
      return NOTE_READERS.indexOf(String(this.role)) >= 0;
    }

    /** Close the connection for good (the widget is going away). */
    destroy() {
      if (this.destroyed) return;
      this.stopTyping();
      this.destroyed = true;
      for (var k in this.timers) this.clock.clearTimeout(this.timers[k]);
      this.timers = {};
      var clock = this.clock;
      this.typers.forEach(function (t) { clock.clearTimeout(t.timer); });
      if (this.ws) { this._detach(this.ws); this.ws.close(1000); }
      this.ws = null;
    }

    // --- connection -------------------------------------------------------------------

    /** @param {State} state */
    _setState(state) {
      this.state = state;
      this._emit('state', { state: state });
    }

    _heartbeat() {
      this._timer('heartbeat', function () { this._checkAlive(); this._heartbeat(); }, HEARTBEAT_MS);
    }

    _connect() {
      var self = this;
      if (this.destroyed || this.fatal || this.ws) return;
      this._setState(this.everJoined ? 'reconnecting' : 'connecting');
      this.token().then(function (token) {
        if (self.destroyed || self.fatal || self.ws) return;
        /** @type {SocketLike} */
        var ws;
        try {
          ws = new self.Socket(self.url);
        } catch (e) {
          self._scheduleReconnect();
          return;
        }
        self.ws = ws;
        self.lastRx = self.clock.now();
        ws.onopen = function () { ws.send(JSON.stringify({ type: 'auth', token: token })); };
        ws.onmessage = function (ev) {
          if (ws !== self.ws) return;
          self.lastRx = self.clock.now();
          var f;
          try { f = JSON.parse(ev.data); } catch (e) { return; }
          if (f && typeof f === 'object') self._onFrame(f);
        };
        ws.onclose = function (ev) { if (ws === self.ws) self._onClose(ev.code); };
        ws.onerror = function () { /* a close event follows */ };
      }, function () { self._scheduleReconnect(); });
    }

    /** @param {SocketLike} ws */
    _detach(ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    }

    /** @param {number} code */
    _onClose(code) {
      if (this.ws) this._detach(this.ws);
      this.ws = null;
      this.ready = false;
      this.live = false;
      this.joining = false;
      this._cancel('rejoin');
      this.loadingMore = false;
      this.stopTyping();
      this._clearTypers();
      this.people.forEach(function (p) { p.online = false; }); // unknown until we are back
      this._emit('people', { people: this.people });
      if (this.destroyed || this.fatal) return;
      if (code === 4401) {
        if (typeof this.opts.token === 'function' && !this.authRetried) {
          this.authRetried = true;
          this._scheduleReconnect();
        } else if (this.authError && (this.authError.code === 'invalid_signature' || !/expired/i.test(this.authError.message))) {
          // signed with another secret, malformed, bad claims: not something a reload fixes
          this._fail('This chat could not sign you in: the token is not valid (' + this.authError.message + ').', 'invalid_token');
        } else {
          this._fail('Your chat session has expired. Reload the page to continue.', 'unauthorized');
        }
        return;
      }
      this._scheduleReconnect(code === 4429 ? RATE_LIMITED_CLOSE_MS : 0);
    }

    /** @param {number} [minDelay] */
    _scheduleReconnect(minDelay) {
      if (this.destroyed || this.fatal) return;
      this._setState(this.everJoined ? 'reconnecting' : 'connecting');
      this._timer('reconnect', this._connect, this._backoff(minDelay));
    }

    /** The next attempt's delay (connect or join; reset once joined). @param {number} [minDelay] */
    _backoff(minDelay) {
      this.attempt += 1;
      var exp = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt - 1));
      return Math.max(minDelay || 0, exp / 2 + this.random() * exp / 2); // "equal jitter"
    }

    _checkAlive() {
      if (!this.ws || !this.ready) return;
      var idle = this.clock.now() - this.lastRx;
      if (idle > DEAD_AFTER_MS) {
        var ws = this.ws;
        this._detach(ws);
        try { ws.close(4000, 'no answer'); } catch (e) { /* already closing */ }
        this._onClose(4000);
      } else if (idle > PING_AFTER_MS) {
        this._ping();
      }
    }

    _ping() { this._sendRaw({ type: 'ping' }); }

    /** A `join` failed for a passing reason: ask again on this socket after the backoff. */
    _retryJoin() {
      this.joining = false;
      this._setState(this.everJoined ? 'reconnecting' : 'connecting');
      this._timer('rejoin', this._join, this._backoff());
    }

    /** @param {Frame} frame */
    _sendRaw(frame) {
      if (!this.ws || this.ws.readyState !== 1) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    /** Send a frame that needs the order joined; false if offline. @param {Frame} frame */
    _sendFrame(frame) {
      if (!this.live) return false;
      return this._sendRaw(frame);
    }

    /** @param {string} text @param {string} [code] */
    _fail(text, code) {
      var fatal = this.fatal = code || 'closed';
      this._cancel('reconnect');
      if (this.ws) { var ws = this.ws; this._detach(ws); ws.close(1000); this.ws = null; }
      this.live = false;
      this._setState('closed');
      this._emit('error', { code: fatal, message: text, fatal: true });
    }

    // --- frames from the server -------------------------------------------------------

    /** @param {Frame} f */
    _onFrame(f) {
      if (f.order != null && f.order !== this.order) return;
      switch (f.type) {
        case 'ready': return this._onReady(f);
        case 'joined': return this._onJoined(f);
        case 'message': return this._onMessage(/** @type {Message} */ (f), false);
        case 'ack': return this._onAck(f);
        case 'history': return this._onHistory(f);
        case 'typing': return this._onTyping(f);
        case 'receipt': return this._onReceipt(f);
        case 'unread': return this._setUnread(f.count, f.total);
        case 'presence': return this._onPresence(f);
        case 'order': return this._onOrder(f);
        case 'reply_state': return this._setAwaiting(f.awaiting_reply);
        case 'left': return this._onLeft(f);
        case 'error': return this._onError(f);
        default: return undefined; // pong, and frame types added later
      }
    }

    /** @param {Frame} f */
    _onReady(f) {
      this.ready = true;
      this.authRetried = false;
      this.authError = null;
      this.me = f.user;
      this._loadOutbox();
      this._join();
      this._emit('ready', { user: f.user });
    }

    _join() {
      if (!this.ready || this.live || this.destroyed || this.fatal) return;
      /** @type {Frame} */
      var join = { type: 'join', order: this.order };
      if (this.everJoined) join.since = this.newestSeq; // resume: only what we do not have
      this.joining = true;
      this._sendRaw(join);
    }

    /** @param {Frame} f */
    _onJoined(f) {
      var first = !this.everJoined;
      this.joining = false;
      this.live = true;
      this.everJoined = true;
      this.attempt = 0;
      if (f.truncated) this._dropConfirmed(); // a gap: start over from the replayed newest page
      this.liveAfter = f.last_seq;
      // The server's marker is the truth: it only moves forward there, and a `read`
      // written to a socket that then died never got there (the view reads again).
      this.readSeq = f.read_seq || 0;
      this._setPeople(f.participants);
      this._setOrder(f);
      this._setUnread(f.unread, null);
      // the others' read markers come back with the history: "Seen by" survives a reload
      if (Array.isArray(f.receipts)) {
        for (var i = 0; i < f.receipts.length; i++) this._onReceipt(f.receipts[i]);
      }
      this._emit('joined', { first: first, unread: f.unread || 0, readSeq: f.read_seq || 0, lastSeq: f.last_seq || 0 });
      this._setState('online');
      this._flushOutbox();
    }

    /** @param {Message} m @param {boolean} fromHistory */
    _onMessage(m, fromHistory) {
      if (typeof m.seq !== 'number' || this.msgs.has(m.seq)) return; // dedupe by seq
      var own = !!(this.me && m.sender && m.sender.id === this.me.id);
      var live = !fromHistory && m.seq > this.liveAfter;
      if (m.sender) this.names.set(m.sender.id, m.sender.name);
      if (own && m.client_id && this.outbox.has(m.client_id)) this._settle(m.client_id);
      if (live && !own && m.sender) this._stopTyper(m.sender.id);
      this._store(m, own, live, fromHistory ? 'history' : 'live');
      this._emit('message', { message: m, own: own, live: live });
    }

    /**
     * @param {Message} m @param {boolean} own @param {boolean} live
     * @param {'live' | 'history' | 'ack'} source
     */
    _store(m, own, live, source) {
      var older = this.oldestSeq !== null && m.seq < this.oldestSeq;
      this.msgs.set(m.seq, m);
      if (this.oldestSeq === null || m.seq < this.oldestSeq) this.oldestSeq = m.seq;
      if (m.seq > this.newestSeq) this.newestSeq = m.seq;
      this._emit('insert', { message: m, own: own, live: live, older: older, source: source });
    }

    /** @param {Frame} f */
    _onAck(f) {
      this.actions.delete(f.client_id);
      var item = this.outbox.get(f.client_id);
      if (this.readSeq < f.seq) this.readSeq = f.seq; // sending moves our read marker
      if (!item) return;
      this._settle(f.client_id);
      if (!this.msgs.has(f.seq) && !(f.duplicate && this.oldestSeq != null && f.seq < this.oldestSeq) && this.me) {
        // The ack came before the message itself (or the message was stored by an
        // earlier attempt): hold it as stored; the `message` frame dedupes by seq.
        this._store({
          order: this.order, seq: f.seq, ts: f.ts, kind: item.kind, text: item.text, client_id: item.client_id,
          sender: { id: this.me.id, name: this.me.name, role: this.role || this.me.role }, attachments: item.attachments || []
        }, true, false, 'ack');
      }
    }

    /** @param {Frame} f */
    _onHistory(f) {
      this.loadingMore = false;
      this._emit('paging', { loading: false });
      var msgs = f.messages || [];
      for (var i = 0; i < msgs.length; i++) this._onMessage(msgs[i], true);
      if (!f.has_more) this.noMoreBefore = true;
    }

    /** @param {Frame} f */
    _onTyping(f) {
      if (!f.user || (this.me && f.user.id === this.me.id)) return;
      if (f.active) {
        var self = this, id = f.user.id, t = this.typers.get(id);
        if (t) this.clock.clearTimeout(t.timer);
        this.typers.set(id, {
          name: f.user.name,
          timer: this.clock.setTimeout(function () { self._stopTyper(id); }, TYPING_SHOW_MS)
        });
        this._emitTyping();
      } else {
        this._stopTyper(f.user.id);
      }
    }

    /** @param {Frame} f */
    _onReceipt(f) {
      if (this.me && f.user === this.me.id) {
        if (f.seq > this.readSeq) this.readSeq = f.seq;
        return;
      }
      if ((this.receipts.get(f.user) || 0) < f.seq) {
        this.receipts.set(f.user, f.seq);
        this._emit('receipt', { user: f.user, seq: f.seq });
      }
    }

    /** @param {Frame} f */
    _onPresence(f) {
      var p = this.people.get(f.user);
      if (p) { p.online = !!f.online; this._emit('people', { people: this.people }); }
    }

    /** @param {Frame} f */
    _onOrder(f) {
      if (f.participants) this._setPeople(f.participants);
      this._setOrder(f);
    }

    /** @param {Frame} f */
    _onLeft(f) {
      if (f.reason === 'removed') this._fail('You no longer have access to this order’s chat.', 'removed');
    }

    /** @param {Frame} f */
    _onError(f) {
      if (!this.ready && (f.code === 'unauthorized' || f.code === 'invalid_signature')) {
        this.authError = { code: f.code, message: String(f.message || '') };
      }
      var action = f.ref != null ? this.actions.get(f.ref) : undefined;
      if (action) {
        this.actions.delete(f.ref);
        this._emit('error', { code: f.code, message: f.message, ref: f.ref, action: action });
        return;
      }
      var item = f.ref != null ? this.outbox.get(f.ref) : null;
      if (item) {
        if (RETRYABLE.indexOf(f.code) >= 0) {
          item.state = 'queued';
          this._timer('retry', this._flushOutbox, RETRY_LATER_MS);
        } else {
          item.state = 'failed';
          item.error = f.message || f.code;
          this._saveOutbox();
        }
        this._emit('outbox', { item: item, added: false });
      } else if (f.ref === this.order && this.joining) {
        if (JOIN_FINAL.indexOf(f.code) >= 0) {
          this._fail('This order’s chat is not available.', f.code);
          return;
        }
        // unavailable, rate_limited, internal, …: passing; join again with the backoff
        // (the state stays connecting / reconnecting meanwhile)
        this._retryJoin();
      } else if (f.ref === this.order && this.loadingMore) {
        this.loadingMore = false;
      }
      this._emit('error', { code: f.code, message: f.message, ref: f.ref });
    }

    // --- order state, people, unread, typing ------------------------------------------

    /** @param {any} list */
    _setPeople(list) {
      if (!Array.isArray(list)) return;
      /** @type {Map<string, Person>} */
      var people = new Map();
      list.forEach(function (p) {
        people.set(p.id, { id: p.id, name: p.name, role: p.role, online: !!p.online, avatar_url: p.avatar_url || null });
      });
      this.people = people;
      var mine = this.me && people.get(this.me.id);
      this.role = mine ? mine.role : (this.me ? this.me.role : null);
      if (!this.mayReadNotes()) this._dropNotes();
      this._emit('people', { people: people });
    }

    /**
     * The role changed to one without notes (a sales rep made the buyer while offline: the
     * resume replays only what came after): the notes held go, and so do unsent ones.
     */
    _dropNotes() {
      var self = this;
      /** @type {number[]} */
      var seqs = [];
      this.msgs.forEach(function (m, seq) { if (m.kind === 'note') seqs.push(seq); });
      seqs.forEach(function (seq) { self.msgs.delete(seq); });
      if (seqs.length) this._emit('remove', { seqs: seqs });
      /** @type {OutboxItem[]} */
      var notes = [];
      this.outbox.forEach(function (item) { if (item.kind === 'note') notes.push(item); });
      notes.forEach(function (item) {
        self._settle(item.client_id);
        self._emit('error', { code: 'forbidden', message: 'your role on this order no longer writes notes',
                              ref: item.client_id, action: 'note' });
      });
    }

    /** The order's state from `joined` or `order` (fields a server of an older version leaves out keep defaults). @param {Frame} f */
    _setOrder(f) {
      var status = f.status == null ? null : String(f.status), dispute = f.dispute || null;
      var changed = status !== this.status || JSON.stringify(dispute) !== JSON.stringify(this.dispute) ||
        !!f.closed !== this.closed;
      this.status = status;
      this.dispute = dispute;
      this.workflow = f.workflow || 'free';
      this.statusLabel = f.status_label || status;
      this.statusTone = f.status_tone || 'neutral';
      this.nextStatuses = statusList(f.next_statuses);
      this.statuses = statusList(f.statuses); // the whole pipeline: how past statuses of the history show
      this.closed = !!f.closed;
      this.closedReason = f.closed_reason || null;
      if ('awaiting_reply' in f) this.awaitingReply = f.awaiting_reply || null;
      this._emit('order', { status: status, dispute: this.dispute, changed: changed });
    }

    /** @param {AwaitingReply | null | undefined} a */
    _setAwaiting(a) {
      this.awaitingReply = a || null;
      this._emit('reply', { awaiting: this.awaitingReply });
    }

    /** @param {number} n @param {number | null | undefined} total */
    _setUnread(n, total) {
      this.unread = Math.max(0, n | 0);
      this._emit('unread', { count: this.unread, total: total });
    }

    /** @param {string} id */
    _stopTyper(id) {
      var t = this.typers.get(id);
      if (!t) return;
      this.clock.clearTimeout(t.timer);
      this.typers.delete(id);
      this._emitTyping();
    }

    _clearTypers() {
      var clock = this.clock;
      this.typers.forEach(function (t) { clock.clearTimeout(t.timer); });
      this.typers.clear();
      this._emitTyping();
    }

    _emitTyping() {
      /** @type {string[]} */
      var names = [];
      this.typers.forEach(function (t) { names.push(t.name); });
      this._emit('typing', { names: names });
    }

    /** Forget every stored message (after a truncated resume); pending ones stay. */
    _dropConfirmed() {
      this.msgs.clear();
      this.oldestSeq = null;
      this.noMoreBefore = false;
      this._emit('reset', {});
    }

    // --- outbox: pending, queued, retried with the same client_id ---------------------

    _storageKey() {
      return this.me ? 'chatd:outbox:v1:' + this.url + ':' + this.order + ':' + this.me.id : null;
    }

    /** What the Storage holds under our key (every tab of this user in this order shares it). @param {string} key */
    _readStored(key) {
      /** @type {any} */
      var items = [];
      try { items = JSON.parse(/** @type {StorageLike} */ (this.storage).getItem(key) || '[]'); } catch (e) { items = []; }
      return Array.isArray(items) ? items.filter(function (/** @type {any} */ it) {
        return it && typeof it.client_id === 'string' && typeof it.text === 'string';
      }) : [];
    }

    _saveOutbox() {
      var key = this._storageKey();
      if (!key || !this.storage) return;
      var self = this;
      // Another tab's queued messages stay (merged by client_id); ours replace our copies, and
      // what this tab settled or holds as failed goes.
      /** @type {Map<string, any>} */
      var byId = new Map();
      this._readStored(key).forEach(function (it) {
        if (!self.outbox.has(it.client_id) && !self.settledIds.has(it.client_id)) byId.set(it.client_id, it);
      });
      this.outbox.forEach(function (it) {
        if (it.state !== 'failed') {
          byId.set(it.client_id, { client_id: it.client_id, text: it.text, kind: it.kind, created: it.created, attachments: it.attachments || [] });
        }
      });
      var items = Array.from(byId.values()).sort(function (a, b) { return (+a.created || 0) - (+b.created || 0); });
      try {
        if (items.length) this.storage.setItem(key, JSON.stringify(items));
        else this.storage.removeItem(key);
      } catch (e) { /* storage full or disabled: the in-memory queue still works */ }
    }

    /**
     * Messages typed in an earlier visit, or in another tab, that never got their ack (same
     * client_id: the server stores each once). Read on every `ready`: a tab closed while
     * offline leaves its queue to the tabs still open.
     */
    _loadOutbox() {
      var key = this._storageKey();
      if (!key || !this.storage) return;
      var self = this, added = false;
      this._readStored(key).forEach(function (/** @type {any} */ it) {
        if (self.outbox.has(it.client_id) || self.settledIds.has(it.client_id)) return;
        var atts = Array.isArray(it.attachments) ? it.attachments.filter(function (/** @type {any} */ a) {
          return a && typeof a.id === 'string' && typeof a.name === 'string';
        }) : [];
        /** @type {OutboxItem} */
        var item = { client_id: it.client_id, text: it.text, kind: it.kind === 'note' ? 'note' : 'text',
                     created: +it.created || self.clock.now(), state: 'queued', attachments: atts };
        self.outbox.set(item.client_id, item);
        added = true;
        self._emit('outbox', { item: item, added: true });
      });
      if (added) { // sent in the order typed, whichever tab typed it
        var all = Array.from(this.outbox.values()).sort(function (a, b) { return a.created - b.created; });
        this.outbox.clear();
        all.forEach(function (it) { self.outbox.set(it.client_id, it); });
      }
      if (this.outbox.size) this._saveOutbox(); // what was typed before `ready` told us who we are
    }

    /** @param {OutboxItem} item */
    _transmit(item) {
      if (item.state === 'failed') return;
      /** @type {Frame} */
      var f = { type: 'send', order: this.order, client_id: item.client_id, text: item.text, kind: item.kind };
      if (item.attachments && item.attachments.length) f.attachments = item.attachments.map(function (a) { return a.id; });
      item.state = this._sendFrame(f) ? 'sending' : 'queued';
      this._emit('outbox', { item: item, added: false });
    }

    _flushOutbox() {
      var self = this;
      this.outbox.forEach(function (item) { if (item.state !== 'failed') self._transmit(item); });
    }

    /** The server has the message (or the user gave it up): drop it from the outbox. @param {string} clientId */
    _settle(clientId) {
      var item = this.outbox.get(clientId);
      if (!item) return;
      this.outbox.delete(clientId);
      this.settledIds.add(clientId);
      this._saveOutbox();
      this._emit('settled', { item: item });
    }
  }

  return { Session: Session, wsUrlOf: wsUrlOf, uuid: uuid, version: '1' };
})();

if (typeof module === 'object' && module && module.exports) module.exports = ChatdSession;
