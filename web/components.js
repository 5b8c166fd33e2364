// @ts-check
/*! chatd components: the unread badge of one order, the bell and the inbox.
 *
 *   ChatdWidget.badge(el, {url, token, order})  the live unread count of one order (sets el's data-unread)
 *   ChatdWidget.bell(el, {url, token})          total unread, and a dropdown of the latest orders
 *                                               with unread messages or an open dispute
 *   ChatdWidget.inbox(el, {url, token})         the user's orders, newest activity first, with the chat
 *
 * Every component of one page with the same url and token (the same string,
 * or the same function) shares one WebSocket (a Feed): it authenticates, asks
 * for the `inbox` and keeps it current from `unread` and `notify` frames.
 * chatd serves this file as part of /widget.js (after widget.js); each
 * component renders in a Shadow DOM with widget.css linked inside, like the
 * widget. Data goes in as text only.
 */
(function (global) {
  'use strict';

  /** @type {typeof import('./session.js')} */
  var Chatd = /** @type {any} */ (global).ChatdSession;
  /** @type {typeof import('./dom.js')} */
  var D = /** @type {any} */ (global).ChatdDom;
  /** @type {any} */
  var Widget = /** @type {any} */ (global).ChatdWidget;
  if (!Chatd || !D || !Widget) throw new Error('chatd components: load session.js, dom.js and widget.js first (chatd\'s /widget.js has them all)');

  var el = D.el, icon = D.icon;
  var INBOX_LIMIT = 100;
  var INBOX_ONLY = 200; // the most orders one `inbox` with `only` may name
  var INBOX_MAX = 200;  // the server's cap on an `inbox` page: older pages come this big
  var SEARCH_PAGES = 10; // older pages one "Search older orders" fetches, one after the other
  var ASK_AGAIN_MS = 1000; // after a refused `inbox` (the read bucket refills at 10 a second)
  var BELL_ITEMS = 8;
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_CAP_MS = 15000;
  var HEARTBEAT_MS = 5000;   // liveness as the chat's session: a socket can die without a close frame
  var PING_AFTER_MS = 20000; // nothing heard for this long: send `ping`
  var DEAD_AFTER_MS = 35000; // ... and still nothing: reconnect

  /**
   * @typedef {import('./session.js').Message} Message
   * @typedef {{seq: number, since: number, due_at: number | null, overdue: boolean}} Awaiting
   * @typedef {{order: string, status: string, unread: number, dispute_open: boolean, last_message: Message | null, reasons: string[] | null, awaiting_reply: Awaiting | null}} Entry
   * @typedef {{url?: string, token: string | (() => string | Promise<string>), locale?: string, css?: string | boolean}} FeedOptions
   */

  var counter = 0;

  function defaultBaseUrl() {
    return Widget.baseUrl ? Widget.baseUrl() : global.location.origin;
  }

  // --- the shared connection ------------------------------------------------

  /** One WebSocket per page for (url, token): the user's inbox, kept live. */
  class Feed {
    /** @param {string} baseUrl @param {FeedOptions['token']} token */
    constructor(baseUrl, token) {
      this.baseUrl = baseUrl;
      this.tokenOpt = token;
      this.wsUrl = Chatd.wsUrlOf(baseUrl, global.location.href);
      /** @type {Map<string, Entry>} */
      this.entries = new Map();
      this.total = 0;
      this.loaded = false;
      /** @type {string | null} why it stopped for good */
      this.fatal = null;
      /** @type {WebSocket | null} */
      this.ws = null;
      this.attempt = 0;
      /** @type {any} */
      this.timer = null;
      /** a token is being asked for */
      this.connecting = false;
      /** @type {Set<() => void>} */
      this.listeners = new Set();
      /** @type {string | null} */
      this.authError = null;
      /** a 4401 since the last `ready` was met with a fresh token once: another is final */
      this.authRetried = false;
      /** @type {Set<(f: Record<string, any>) => void>} refusals of frames sent with send() */
      this.errorListeners = new Set();
      /** @type {string | null} the token's role (from `ready`) */
      this.role = null;
      /** how many views filter by the reply clock: while any does, a new message refreshes the inbox */
      this.watchingReplies = 0;
      /** @type {any} */
      this.refreshTimer = null;
      /** @type {Map<string, number>} the orders badges show, and how many badges show each */
      this.wanted = new Map();
      /** the last inbox page left orders out: a badge's order may be among them */
      this.more = false;
      /** @type {string | null} where the next (older) page starts; null once the last page is in */
      this.cursor = null;
      /** pages past the first are loaded: a reload of the first page keeps them */
      this.deep = false;
      /** reconnected: the entries kept from older pages are as old as the outage */
      this.resync = false;
      /** an older page is on its way */
      this.paging = false;
      /** older pages still to fetch, one after the other */
      this.pagesLeft = 0;
      /** the server refused the next page for good */
      this.pageError = false;
      /** @type {Array<{kind: 'first' | 'next' | 'only', frame: Record<string, any>}>}
       * `inbox` frames not answered yet: answers (and refusals) come in the order asked */
      this.asked = [];
      /** @type {Set<string>} order ids asked for directly (a search for one id) */
      this.looked = new Set();
      /** when the socket last said anything */
      this.lastRx = 0;
      /** @type {any} */
      this.beat = null;
      var self = this;
      // the network is back: reconnect now rather than after the backoff
      global.addEventListener('online', function () { self._reconnectNow(); });
    }

    /** Sends an `inbox` frame, remembered until its answer. @param {'first' | 'next' | 'only'} kind @param {Record<string, any>} frame */
    _ask(kind, frame) {
      if (!this.ws || this.ws.readyState !== 1) return false;
      this.asked.push({ kind: kind, frame: frame });
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    /** Fetch older orders: `pages` pages (default 1), one after the other. @param {number} [pages] */
    loadOlder(pages) {
      if (!this.loaded || !this.cursor) return;
      this.pagesLeft = Math.max(this.pagesLeft, pages || 1);
      this.pageError = false;
      this._nextPage();
      this._changed();
    }

    _nextPage() {
      if (this.paging || !this.cursor || this.pagesLeft <= 0) return;
      if (this._ask('next', { type: 'inbox', cursor: this.cursor, limit: INBOX_MAX })) {
        this.paging = true;
        this.pagesLeft -= 1;
      }
    }

    /** One order of the user's, by its exact id, when the loaded pages do not have it. @param {string} order */
    lookup(order) {
      if (!this.loaded || !this.cursor || this.entries.has(order) || this.looked.has(order)) return;
      if (this._ask('only', { type: 'inbox', only: [order] })) this.looked.add(order);
    }

    /** A badge shows this order: its count must be known even beyond the inbox's first page.
     * @param {string} order @returns {() => void} the release */
    want(order) {
      var self = this;
      this.wanted.set(order, (this.wanted.get(order) || 0) + 1);
      this._askMissing();
      return function () {
        var n = (self.wanted.get(order) || 1) - 1;
        if (n) self.wanted.set(order, n); else self.wanted.delete(order);
      };
    }

    /** Ask for the wanted orders the inbox page left out (the answer echoes `only`). */
    _askMissing() {
      if (!this.loaded || !this.more || !this.ws || this.ws.readyState !== 1) return;
      var self = this;
      var missing = Array.from(this.wanted.keys()).filter(function (o) { return !self.entries.has(o); });
      for (var i = 0; i < missing.length; i += INBOX_ONLY) {
        this._ask('only', { type: 'inbox', only: missing.slice(i, i + INBOX_ONLY) });
      }
    }

    /** Ask for the inbox again, at most once a second (the reply clock has no live frame here). */
    refresh() {
      if (this.refreshTimer || !this.ws) return;
      var self = this;
      this.refreshTimer = setTimeout(function () {
        self.refreshTimer = null;
        self._ask('first', { type: 'inbox', limit: INBOX_LIMIT });
      }, 1000);
    }

    /** @param {() => void} fn called on every change; returns the release */
    use(fn) {
      var self = this;
      this.listeners.add(fn);
      if (!this.ws && !this.timer && !this.fatal && !this.connecting) this._connect();
      if (!this.beat) this._heartbeat();
      if (this.loaded || this.fatal) fn();
      return function () {
        self.listeners.delete(fn);
        if (!self.listeners.size) self._stop();
      };
    }

    /** Sends a frame on the connection when it is up (staff: follow, unfollow); false when it is not. @param {Record<string, any>} frame */
    send(frame) {
      if (!this.ws || this.ws.readyState !== 1 || !this.loaded) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    /** Entries, newest activity first. */
    list() {
      var out = Array.from(this.entries.values());
      out.sort(function (a, b) { return ts(b) - ts(a) || (a.order < b.order ? -1 : 1); });
      return out;
    }

    /** A message the page itself saw (its own, from the inbox's chat): notify skips those. @param {Message} m */
    saw(m) {
      var e = m.order ? this.entries.get(m.order) : undefined;
      if (e && (!e.last_message || e.last_message.seq < m.seq)) { e.last_message = m; this._changed(); }
    }

    _token() {
      var t = this.tokenOpt;
      return new Promise(function (resolve) { resolve(typeof t === 'function' ? t() : t); }).then(String);
    }

    _connect() {
      var self = this;
      this.timer = null;
      this.connecting = true; // until the token comes: the page's other components wait for this one
      this._token().then(function (token) {
        self.connecting = false;
        if (!self.listeners.size || self.ws) return;
        var ws = self.ws = new WebSocket(self.wsUrl);
        self.lastRx = Date.now();
        ws.onopen = function () { ws.send(JSON.stringify({ type: 'auth', token: token })); };
        ws.onmessage = function (ev) {
          if (self.ws === ws) self.lastRx = Date.now();
          var f;
          try { f = JSON.parse(String(ev.data)); } catch (e) { return; }
          if (f && typeof f === 'object') self._onFrame(f);
        };
        ws.onclose = function (ev) { if (self.ws === ws) self._onClose(ev.code); };
      }, function () { self.connecting = false; self._retry(); });
    }

    /** @param {number} code */
    _onClose(code) {
      this.ws = null;
      this._unasked();
      if (code === 4401) {
        if (typeof this.tokenOpt === 'function' && !this.authRetried) {
          this.authRetried = true; // the token expired: the page's function may give a fresh one
          this._retry();
          return;
        }
        this.fatal = this.authError && !/expired/i.test(this.authError)
          ? 'The token is not valid (' + this.authError + ').' : 'Your session has expired. Reload the page.';
        this._changed();
        return;
      }
      this._retry();
    }

    _heartbeat() {
      var self = this;
      this.beat = setTimeout(function () { self._checkAlive(); self._heartbeat(); }, HEARTBEAT_MS);
    }

    _checkAlive() {
      var ws = this.ws;
      if (!ws) return;
      var idle = Date.now() - this.lastRx;
      if (idle > DEAD_AFTER_MS) {
        ws.onclose = null; // a half-open socket may never say it closed: give it up now
        try { ws.close(4000, 'no answer'); } catch (e) { /* already closing */ }
        this._onClose(4000);
      } else if (idle > PING_AFTER_MS && ws.readyState === 1) {
        ws.send(JSON.stringify({ type: 'ping' }));
      }
    }

    _reconnectNow() {
      if (this.ws || this.connecting || this.fatal || !this.listeners.size) return;
      clearTimeout(this.timer);
      this.attempt = 0;
      this._connect();
    }

    _retry() {
      if (!this.listeners.size || this.fatal) return;
      var self = this;
      this.attempt += 1;
      var exp = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt - 1));
      this.timer = setTimeout(function () { self._connect(); }, exp / 2 + Math.random() * exp / 2);
    }

    _stop() {
      clearTimeout(this.timer);
      this.timer = null;
      clearTimeout(this.beat);
      this.beat = null;
      if (this.ws) { var ws = this.ws; this.ws = null; ws.onclose = null; ws.close(1000); }
      this._unasked();
    }

    /** The connection is gone, and the answers it owed. */
    _unasked() {
      this.asked = [];
      this.paging = false;
      this.pagesLeft = 0;
    }

    /** @param {Record<string, any>} f */
    _onFrame(f) {
      switch (f.type) {
        case 'ready':
          this.attempt = 0;
          this.authError = null;
          this.authRetried = false;
          this.role = f.user && typeof f.user.role === 'string' ? f.user.role : null;
          this.resync = this.loaded;
          this._ask('first', { type: 'inbox', limit: INBOX_LIMIT });
          return;
        case 'inbox': return this._onInbox(f);
        case 'unread': return this._onUnread(f);
        case 'notify': return this._onNotify(f);
        case 'error':
          if (f.code === 'unauthorized' || f.code === 'invalid_signature') this.authError = String(f.message || '');
          else if (f.ref == null && this.asked.length) this._inboxRefused(f); // an `inbox` error names nothing
          else this.errorListeners.forEach(function (fn) { fn(f); });
          return;
        default: return;
      }
    }

    /** A refusal of the oldest `inbox` frame not answered: passing ones are asked again. @param {Record<string, any>} f */
    _inboxRefused(f) {
      var a = /** @type {{kind: 'first' | 'next' | 'only', frame: Record<string, any>}} */ (this.asked.shift());
      if (a.kind === 'next') this.paging = false;
      if (f.code === 'bad_request') { // asking again would change nothing
        if (a.kind === 'next') { this.pageError = true; this.pagesLeft = 0; }
      } else {
        var self = this, ws = this.ws;
        if (a.kind === 'next') this.pagesLeft += 1;
        setTimeout(function () {
          if (self.ws !== ws) return; // reconnected: asked afresh
          if (a.kind === 'next') self._nextPage(); else self._ask(a.kind, a.frame);
        }, ASK_AGAIN_MS);
      }
      this._changed();
    }

    /** @param {Record<string, any>} f */
    _onInbox(f) {
      var only = Array.isArray(f.only); // entries to add (badges', a searched id), not a page
      var i = this.asked.findIndex(function (a) { return (a.kind === 'only') === only; });
      var kind = only ? 'only' : i >= 0 ? this.asked[i].kind : 'first';
      if (i >= 0) this.asked.splice(i, 1);
      /** @type {Entry[]} */
      var page = [];
      (Array.isArray(f.orders) ? f.orders : []).forEach(function (/** @type {any} */ o) {
        if (!o || typeof o.order !== 'string') return;
        page.push({
          order: o.order, status: String(o.status || ''), unread: o.unread | 0,
          dispute_open: !!o.dispute_open, last_message: o.last_message || null,
          reasons: Array.isArray(o.reasons) ? o.reasons.map(String) : null,
          awaiting_reply: o.awaiting_reply && typeof o.awaiting_reply.since === 'number' ? o.awaiting_reply : null
        });
      });
      /** @type {string[]} */
      var kept = [];
      if (kind === 'first') {
        var entries = new Map();
        page.forEach(function (e) { entries.set(e.order, e); });
        var edge = page[page.length - 1];
        if (this.deep && f.next_cursor && edge) {
          // older pages stay loaded (and the cursor past them): what is older than this page is theirs
          this.entries.forEach(function (e) {
            if (!entries.has(e.order) && ts(e) <= ts(edge)) { entries.set(e.order, e); kept.push(e.order); }
          });
        } else {
          this.cursor = f.next_cursor || null;
          this.deep = false;
          this.looked.clear(); // the ids found by lookup are gone with the old entries
        }
        this.entries = entries;
        this.loaded = true;
      } else {
        var have = this.entries;
        page.forEach(function (e) { have.set(e.order, e); });
        if (kind === 'next') {
          this.paging = false;
          this.deep = true;
          this.cursor = f.next_cursor || null;
        }
      }
      this.more = !!this.cursor;
      this.total = f.total_unread | 0;
      this._changed();
      if (kind === 'first') {
        if (this.resync) {
          this.resync = false;
          for (var j = 0; j < kept.length; j += INBOX_ONLY) this._ask('only', { type: 'inbox', only: kept.slice(j, j + INBOX_ONLY) });
        }
        this._askMissing();
      }
      if (kind === 'next') this._nextPage();
    }

    /** @param {Record<string, any>} f */
    _onUnread(f) {
      var e = this._entry(f.order);
      e.unread = Math.max(0, f.count | 0);
      if (typeof f.total === 'number') this.total = f.total;
      if (Array.isArray(f.reasons)) e.reasons = f.reasons.map(String); // staff: the attention queue's reasons
      this._changed();
    }

    /** @param {Record<string, any>} f */
    _onNotify(f) {
      var m = /** @type {Message} */ (f.message);
      if (!m || typeof f.order !== 'string') return;
      var e = this._entry(f.order);
      if (!e.last_message || e.last_message.seq < m.seq) e.last_message = m;
      if (m.kind === 'status' && m.status) e.status = m.status;
      if (m.kind === 'dispute') e.dispute_open = /^Dispute opened/.test(String(m.text || ''));
      if (m.kind === 'text' && this.watchingReplies > 0) this.refresh();
      this._changed();
    }

    /** @param {string} order */
    _entry(order) {
      var e = this.entries.get(order);
      if (!e) {
        e = { order: order, status: '', unread: 0, dispute_open: false, last_message: null, reasons: null, awaiting_reply: null };
        this.entries.set(order, e);
      }
      return e;
    }

    _changed() {
      this.listeners.forEach(function (fn) {
        try { fn(); } catch (e) { setTimeout(function () { throw e; }); }
      });
    }
  }

  /** @param {Entry} e */
  function ts(e) { return e.last_message ? e.last_message.ts : 0; }

  /** @type {Map<string, Map<FeedOptions['token'], Feed>>} by url, then token (a string, or a function by identity) */
  var feeds = new Map();

  /** The page's one Feed for these options. @param {FeedOptions} opts */
  function feedFor(opts) {
    if (!opts || !opts.token) throw new TypeError('chatd components: options.token required');
    var base = (opts.url || defaultBaseUrl()).replace(/\/+$/, '');
    var byToken = feeds.get(base);
    if (!byToken) { byToken = new Map(); feeds.set(base, byToken); }
    var f = byToken.get(opts.token);
    if (!f) { f = new Feed(base, opts.token); byToken.set(opts.token, f); }
    return f;
  }

  /**
   * A shadow root inside `host` with widget.css linked in it.
   * @param {Element} host @param {'span' | 'div'} tag @param {FeedOptions} opts @param {string} baseUrl
   */
  function shadowIn(host, tag, opts, baseUrl) {
    var box = el(tag, 'chatd-host');
    host.appendChild(box);
    var root = box.attachShadow({ mode: 'open' });
    if (opts.css !== false) {
      var href = typeof opts.css === 'string' ? opts.css : baseUrl + '/widget.css';
      root.appendChild(el('link', null, null, { rel: 'stylesheet', href: new URL(href, global.location.href).href }));
    }
    return { box: box, root: root };
  }

  /** @param {number} n */
  function countText(n) { return n > 99 ? '99+' : String(n); }

  /** @param {Message | null} m */
  function snippet(m) {
    if (!m) return 'No messages yet';
    var text = String(m.text || '');
    if (!text && m.attachments && m.attachments.length) text = m.attachments.map(function (a) { return a.name; }).join(', ');
    var who = m.sender && m.sender.id !== 'system' ? m.sender.name + ': ' : '';
    return who + text;
  }

  /** @param {Element} host @param {string} name @param {any} detail @param {any} opts */
  function emit(host, name, detail, opts) {
    host.dispatchEvent(new CustomEvent('chatd:' + name, { detail: detail, bubbles: true }));
    var cb = opts['on' + name.charAt(0).toUpperCase() + name.slice(1)];
    if (typeof cb === 'function') cb(detail);
  }

  // --- badge -------------------------------------------------------------------

  /**
   * The live unread count of one order as a red badge; el gets `data-unread`.
   * @param {Element} host @param {FeedOptions & {order: string}} opts
   */
  function badge(host, opts) {
    if (!host || !opts || !opts.order) throw new TypeError('ChatdWidget.badge: element and options.order required');
    var feed = feedFor(opts), order = String(opts.order);
    var sh = shadowIn(host, 'span', opts, feed.baseUrl);
    sh.box.style.display = 'inline-block';
    var b = el('span', 'chatd-cbadge', null, { hidden: '' });
    var wrapB = el('span', 'chatd-c');
    wrapB.appendChild(b);
    sh.root.appendChild(wrapB);
    var unwant = feed.want(order);
    var release = feed.use(function () {
      var e = feed.entries.get(order), n = e ? e.unread : 0;
      if (feed.fatal) { // stopped for good: a count that no longer follows the server is not shown
        host.removeAttribute('data-unread');
        b.hidden = true;
        return;
      }
      host.setAttribute('data-unread', String(n));
      b.hidden = n === 0;
      b.textContent = countText(n);
      b.setAttribute('aria-label', countText(n) + ' unread message' + (n === 1 ? '' : 's'));
      b.setAttribute('role', 'status');
    });
    return { destroy: function () { unwant(); release(); sh.box.remove(); host.removeAttribute('data-unread'); } };
  }

  // --- bell ---------------------------------------------------------------------

  /**
   * The total unread, with a dropdown of the latest orders with unread messages or an open dispute.
   * Choosing one: `link(order)` as its href when given, else the `chatd:open` event ({order}) and `onOpen`.
   * @param {Element} host @param {FeedOptions & {link?: (order: string) => string, onOpen?: (d: {order: string}) => void}} opts
   */
  function bell(host, opts) {
    if (!host) throw new TypeError('ChatdWidget.bell: element required');
    var feed = feedFor(opts), fmt = D.makeFormatters(opts.locale), id = 'chatd-bell-' + (++counter);
    var sh = shadowIn(host, 'span', opts, feed.baseUrl);
    sh.box.style.display = 'inline-block';
    var wrap = el('div', 'chatd-c chatd-bell-wrap');
    var btn = el('button', 'chatd-bell', null, { type: 'button', 'aria-expanded': 'false', 'aria-controls': id });
    btn.appendChild(icon('bell'));
    var count = el('span', 'chatd-cbadge', null, { hidden: '', 'aria-hidden': 'true' });
    btn.appendChild(count);
    var panel = el('div', 'chatd-bell-panel', null, { id: id, hidden: '' });
    var heading = el('h2', 'chatd-bell-title', 'Messages');
    var list = el('ul', 'chatd-bell-list', null, { 'aria-label': 'Orders with news' });
    panel.appendChild(heading);
    panel.appendChild(list);
    wrap.appendChild(btn);
    wrap.appendChild(panel);
    sh.root.appendChild(wrap);

    /** @param {boolean} open */
    var toggle = function (open) {
      panel.hidden = !open;
      btn.setAttribute('aria-expanded', String(open));
    };
    btn.addEventListener('click', function () { toggle(panel.hidden); });
    /** @param {Event} e */
    var outside = function (e) { if (!e.composedPath().includes(sh.box)) toggle(false); };
    /** @param {KeyboardEvent} e */
    var esc = function (e) { if (e.key === 'Escape' && !panel.hidden) { toggle(false); btn.focus(); } };
    document.addEventListener('click', outside);
    document.addEventListener('keydown', esc);

    var release = feed.use(function () {
      var n = feed.total;
      count.hidden = n === 0 || !!feed.fatal;
      count.textContent = countText(n);
      btn.setAttribute('aria-label', feed.fatal ? 'Messages: ' + feed.fatal : 'Messages, ' + countText(n) + ' unread');
      if (feed.fatal) host.removeAttribute('data-unread'); else host.setAttribute('data-unread', String(n));
      list.textContent = '';
      // stopped for good: the panel says so instead of counts that no longer follow the server
      var news = feed.fatal ? [] : feed.list().filter(function (e) { return e.unread > 0 || e.dispute_open; }).slice(0, BELL_ITEMS);
      if (!news.length) list.appendChild(el('li', 'chatd-bell-empty', feed.fatal || 'No unread messages'));
      news.forEach(function (e) {
        var li = el('li');
        var item = opts.link
          ? el('a', 'chatd-bell-item', null, { href: opts.link(e.order) })
          : el('button', 'chatd-bell-item', null, { type: 'button' });
        var top = el('span', 'chatd-bell-top');
        top.appendChild(el('strong', 'chatd-bell-order', e.order, { title: e.order }));
        if (e.dispute_open) top.appendChild(el('span', 'chatd-dispute-mark', 'Dispute'));
        if (e.unread) top.appendChild(el('span', 'chatd-cbadge', countText(e.unread), { 'aria-label': countText(e.unread) + ' unread' }));
        item.appendChild(top);
        item.appendChild(el('span', 'chatd-bell-text', snippet(e.last_message)));
        if (e.last_message) item.appendChild(el('span', 'chatd-bell-time', fmt.short(e.last_message.ts)));
        if (!opts.link) item.addEventListener('click', function () { toggle(false); emit(host, 'open', { order: e.order }, opts); });
        li.appendChild(item);
        list.appendChild(li);
      });
    });
    return {
      destroy: function () {
        release();
        document.removeEventListener('click', outside);
        document.removeEventListener('keydown', esc);
        sh.box.remove();
      }
    };
  }

  // --- inbox ----------------------------------------------------------------------

  /**
   * The user's orders, newest activity first, with search and filters; choosing one opens its
   * chat beside the list (wide) or in its place (narrow: a phone).
   * @param {Element} host @param {FeedOptions & {title?: string}} opts
   */
  function inbox(host, opts) {
    if (!host) throw new TypeError('ChatdWidget.inbox: element required');
    var feed = feedFor(opts), fmt = D.makeFormatters(opts.locale), id = 'chatd-inbox-' + (++counter);
    var sh = shadowIn(host, 'div', opts, feed.baseUrl);
    sh.box.style.height = '100%';
    var root = el('section', 'chatd chatd-inbox', null, { 'aria-label': opts.title || 'Order messages' });
    var listPane = el('div', 'chatd-inbox-list');
    var head = el('div', 'chatd-inbox-head');
    head.appendChild(el('h2', 'chatd-title', opts.title || 'Messages'));
    var total = el('span', 'chatd-cbadge', null, { hidden: '' });
    head.appendChild(total);
    var search = /** @type {HTMLInputElement} */ (el('input', 'chatd-input chatd-inbox-search', null, {
      type: 'search', id: id + '-q', placeholder: 'Search order, name or text', autocomplete: 'off'
    }));
    var searchLabel = el('label', 'chatd-sr', 'Search messages', { for: id + '-q' });
    var filters = el('div', 'chatd-inbox-filters', null, { role: 'group', 'aria-label': 'Filters' });
    /** @type {Record<string, HTMLElement>} */
    var chips = {};
    [['unread', 'Unread'], ['dispute', 'Open disputes'], ['awaiting', 'Awaiting reply']].forEach(function (f) {
      var b = el('button', 'chatd-filter', f[1], { type: 'button', 'aria-pressed': 'false', 'data-filter': f[0] });
      b.addEventListener('click', function () {
        var on = b.getAttribute('aria-pressed') !== 'true';
        b.setAttribute('aria-pressed', String(on));
        if (f[0] === 'awaiting') {
          feed.watchingReplies += on ? 1 : -1;
          if (on) feed.refresh();
        }
        render();
      });
      chips[f[0]] = b;
      filters.appendChild(b);
    });
    var stopped = el('p', 'chatd-notice chatd-inbox-stopped', null, { role: 'alert', hidden: '' });
    var rows = el('ul', 'chatd-inbox-rows', null, { 'aria-label': 'Orders' });
    var empty = el('p', 'chatd-inbox-empty', 'Loading…', { role: 'status' });
    // while older pages are not loaded: says so, and fetches them
    var more = el('div', 'chatd-inbox-more', null, { hidden: '' });
    var moreNote = el('p', 'chatd-inbox-more-note', null, { role: 'status' });
    var moreBtn = /** @type {HTMLButtonElement} */ (el('button', 'chatd-action', null, { type: 'button' }));
    more.appendChild(moreNote);
    more.appendChild(moreBtn);
    [head, stopped, searchLabel, search, filters, rows, empty, more].forEach(function (n) { listPane.appendChild(n); });

    var chatPane = el('div', 'chatd-inbox-chat');
    var back = el('button', 'chatd-action chatd-inbox-back', null, { type: 'button' });
    back.appendChild(icon('back'));
    back.appendChild(el('span', null, 'All orders'));
    var chatBox = el('div', 'chatd-inbox-chatbox');
    var placeholder = el('p', 'chatd-inbox-placeholder', 'Choose an order to see its chat.');
    chatPane.appendChild(back);
    chatPane.appendChild(chatBox);
    chatPane.appendChild(placeholder);
    var grid = el('div', 'chatd-inbox-grid'); // laid out by the width of root (a container)
    grid.appendChild(listPane);
    grid.appendChild(chatPane);
    root.appendChild(grid);
    sh.root.appendChild(root);

    /** @type {string | null} */
    var current = null;
    /** @type {any} */
    var widget = null;

    /** @param {string} order */
    var open = function (order) {
      if (widget) widget.destroy();
      current = order;
      placeholder.hidden = true;
      widget = Widget.mount(chatBox, { url: feed.baseUrl, token: feed.tokenOpt, order: order, locale: opts.locale });
      widget.on('message', function (/** @type {any} */ d) { if (d.own) feed.saw(d.message); });
      root.classList.add('chatd-inbox--open');
      back.focus({ preventScroll: true });
      emit(host, 'open', { order: order }, opts);
      render();
    };
    back.addEventListener('click', function () {
      root.classList.remove('chatd-inbox--open');
      var row = rows.querySelector('[aria-current="true"]');
      if (row) /** @type {HTMLElement} */ (row).focus();
    });
    /** @type {any} */
    var lookupTimer = null;
    search.addEventListener('input', function () {
      render();
      // an order id typed in full is asked for directly, once the typing pauses
      clearTimeout(lookupTimer);
      var id = search.value.trim();
      if (id && id.length <= 200 && !/\s/.test(id)) lookupTimer = setTimeout(function () { feed.lookup(id); }, 400);
    });
    moreBtn.addEventListener('click', function () { feed.loadOlder(filtering() ? SEARCH_PAGES : 1); });

    var filtering = function () {
      return !!search.value.trim() || ['unread', 'dispute', 'awaiting'].some(function (k) {
        return chips[k].getAttribute('aria-pressed') === 'true';
      });
    };

    /** @param {Entry} e @param {string} q */
    var matches = function (e, q) {
      if (!q) return true;
      var m = e.last_message;
      var hay = [e.order, m && m.sender ? m.sender.name : '', m ? m.text || '' : ''].join('\n').toLowerCase();
      return hay.indexOf(q) >= 0;
    };

    var render = function () {
      var q = search.value.trim().toLowerCase();
      var onlyUnread = chips.unread.getAttribute('aria-pressed') === 'true';
      var onlyDispute = chips.dispute.getAttribute('aria-pressed') === 'true';
      var onlyAwaiting = chips.awaiting.getAttribute('aria-pressed') === 'true';
      chips.awaiting.hidden = !feed.role || feed.role === 'buyer'; // buyers never see the reply clock
      // stopped for good: said above the rows, whose counts no longer follow the server
      var stale = !!feed.fatal;
      stopped.hidden = !stale;
      stopped.textContent = feed.fatal || '';
      total.hidden = feed.total === 0 || stale;
      total.textContent = countText(feed.total);
      total.setAttribute('aria-label', countText(feed.total) + ' unread');
      var list = feed.list().filter(function (e) {
        return matches(e, q) && (!onlyUnread || e.unread > 0) && (!onlyDispute || e.dispute_open) &&
          (!onlyAwaiting || !!e.awaiting_reply);
      });
      rows.textContent = '';
      list.forEach(function (e) {
        var li = el('li');
        var unread = stale ? 0 : e.unread;
        var b = el('button', 'chatd-inbox-row' + (unread ? ' chatd-inbox-row--unread' : ''), null, {
          type: 'button', 'data-order': e.order, 'aria-current': String(e.order === current)
        });
        var top = el('span', 'chatd-inbox-top');
        top.appendChild(el('strong', 'chatd-inbox-order', e.order, { title: e.order }));
        if (e.status) top.appendChild(el('span', 'chatd-status', D.humanize(e.status), { 'data-tone': 'neutral' }));
        if (e.dispute_open) top.appendChild(el('span', 'chatd-dispute-mark', 'Dispute'));
        if (e.awaiting_reply) {
          top.appendChild(el('span', 'chatd-awaiting' + (e.awaiting_reply.overdue ? ' chatd-awaiting--overdue' : ''),
            e.awaiting_reply.overdue ? 'Reply overdue' : 'Awaiting reply'));
        }
        if (e.last_message) {
          top.appendChild(el('time', 'chatd-time', fmt.short(e.last_message.ts), {
            datetime: new Date(e.last_message.ts).toISOString()
          }));
        }
        b.appendChild(top);
        var bottom = el('span', 'chatd-inbox-bottom');
        bottom.appendChild(el('span', 'chatd-inbox-text', snippet(e.last_message)));
        if (unread) bottom.appendChild(el('span', 'chatd-cbadge', countText(unread), { 'aria-label': countText(unread) + ' unread' }));
        b.appendChild(bottom);
        b.addEventListener('click', function () { open(e.order); });
        li.appendChild(b);
        rows.appendChild(li);
      });
      // older orders not loaded yet: never let the list pass for all of them
      var partial = feed.loaded && !feed.fatal && !!feed.cursor;
      var among = 'the ' + feed.entries.size + ' orders loaded';
      empty.hidden = !!list.length || stale;
      empty.textContent = !feed.loaded ? 'Loading…'
        : partial && list.length === 0 ? 'No order matches among ' + among + '.'
          : feed.entries.size ? 'No order matches.' : 'No conversations yet.';
      more.hidden = !partial && !feed.pageError;
      moreBtn.disabled = feed.paging;
      var missing = feed.total;
      feed.entries.forEach(function (e) { missing -= e.unread; });
      if (feed.paging) {
        moreNote.textContent = 'Loading older orders…';
      } else if (feed.pageError) {
        moreNote.textContent = 'Older orders could not be loaded.';
      } else if (filtering()) {
        moreNote.textContent = (list.length ? 'Only ' + among + ' were searched.' : 'Older orders are not searched yet.') +
          (onlyUnread && missing > 0 ? ' ' + missing + ' more unread in older orders.' : '');
      } else {
        moreNote.textContent = 'Older orders are not loaded yet.';
      }
      moreBtn.textContent = feed.pageError ? 'Try again' : filtering() ? 'Search older orders' : 'Show older orders';
    };
    var release = feed.use(render);
    return {
      open: open,
      destroy: function () { clearTimeout(lookupTimer); release(); if (widget) widget.destroy(); sh.box.remove(); }
    };
  }

  // the console (console.js, joined after this file) builds on the shared connection
  Widget._components = { feedFor: feedFor, shadowIn: shadowIn, countText: countText, snippet: snippet, emit: emit };
  Widget.badge = badge;
  Widget.bell = bell;
  Widget.inbox = inbox;
})(window);
