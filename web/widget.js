/*! chatd order-chat widget. Plain JavaScript, no framework, no build step.
 *
 *   <script src="https://chat.example.com/widget.js"></script>
 *   <script>ChatdWidget.mount(element, {order: "o-42", token: jwt});</script>
 *
 * Speaks the chatd wire contract (version 1) over one WebSocket. See docs/widget.md.
 *
 * Layout of this file:
 *   1. constants and pure helpers (formatting, links, ids)
 *   2. DOM helpers and icons (every node is built with DOM APIs; data only ever
 *      reaches the page through textContent / createTextNode / checked hrefs)
 *   3. the Widget class: construction, connection, frames, outbox, rendering,
 *      read tracking, typing, composer
 *   4. the public ChatdWidget object
 */
(function (global) {
  'use strict';

  // --- 1. constants and pure helpers ---------------------------------------

  var SCRIPT_SRC = (document.currentScript && document.currentScript.src) || '';

  var ROLE_LABELS = {
    buyer: 'Buyer', supplier: 'Supplier', sales_rep: 'Sales rep',
    staff: 'Staff', bot: 'Bot', system: 'System'
  };
  var NOTE_WRITERS = ['supplier', 'sales_rep', 'staff', 'bot'];
  var EVENT_KINDS = ['status', 'dispute', 'system'];

  var TYPING_REFRESH_MS = 3000;   // re-send `typing: true` at most this often (server TTL is 6 s)
  var TYPING_IDLE_MS = 4000;      // no keystroke for this long: `typing: false`
  var TYPING_SHOW_MS = 8000;      // safety net: hide someone's indicator without news
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_CAP_MS = 15000;
  var PING_AFTER_MS = 20000;      // nothing heard for this long: send `ping`
  var DEAD_AFTER_MS = 35000;      // ... and still nothing: the socket is dead, reconnect
  var GROUP_MS = 5 * 60 * 1000;   // consecutive messages of one sender within this are grouped
  var NEAR_BOTTOM_PX = 64;
  var LOAD_MORE_PX = 160;
  var READ_DEBOUNCE_MS = 250;
  var RETRY_LATER_MS = 3000;      // rate_limited / unavailable: retry the send after this

  var instances = 0;

  function roleLabel(role) {
    return ROLE_LABELS[role] || String(role || '');
  }

  function humanize(status) {
    var s = String(status || '').replace(/[_-]+/g, ' ').trim();
    return s ? s.charAt(0).toUpperCase() + s.slice(1) : '';
  }

  function firstName(name) {
    return String(name || '').trim().split(/\s+/)[0] || String(name || '');
  }

  function initials(name) {
    var parts = String(name || '?').trim().split(/\s+/);
    var s = parts[0].charAt(0) + (parts.length > 1 ? parts[parts.length - 1].charAt(0) : '');
    return s.toUpperCase() || '?';
  }

  function uuid() {
    var c = global.crypto;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  /** The chatd base URL (http[s]) -> its WebSocket endpoint (ws[s]://…/ws). */
  function wsUrlOf(base) {
    var u = new URL(base, global.location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.pathname = u.pathname.replace(/\/+$/, '') + '/ws';
    u.search = '';
    u.hash = '';
    return u.href;
  }

  function defaultBaseUrl() {
    if (SCRIPT_SRC) {
      var u = new URL(SCRIPT_SRC);
      return u.origin + u.pathname.replace(/\/[^/]*$/, '');
    }
    return global.location.origin;
  }

  function dayKey(ts) {
    var d = new Date(ts);
    return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate();
  }

  function makeFormatters(locale) {
    var time = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' });
    var full = new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeStyle: 'short' });
    var dayThisYear = new Intl.DateTimeFormat(locale, { weekday: 'long', day: 'numeric', month: 'long' });
    var dayOtherYear = new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'long', year: 'numeric' });
    var short = new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
    return {
      time: function (ts) { return time.format(new Date(ts)); },
      full: function (ts) { return full.format(new Date(ts)); },
      short: function (ts) { return short.format(new Date(ts)); },
      day: function (ts) {
        var d = new Date(ts), now = new Date();
        var yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
        if (dayKey(ts) === dayKey(now.getTime())) return 'Today';
        if (dayKey(ts) === dayKey(yesterday.getTime())) return 'Yesterday';
        return (d.getFullYear() === now.getFullYear() ? dayThisYear : dayOtherYear).format(d);
      }
    };
  }

  /** Only absolute http(s) URLs become links; anything else stays text. */
  function safeHref(raw) {
    try {
      var u = new URL(raw);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  var URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  function count(s, ch) {
    return s.split(ch).length - 1;
  }

  /** Append `text` to `parent` as text nodes, with http(s) URLs as safe links. */
  function appendLinkified(parent, text) {
    var last = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text)) !== null) {
      var raw = m[0];
      // Trailing punctuation belongs to the sentence, not the URL ("see https://x.io/a.").
      while (/[.,;:!?'")\]}*]$/.test(raw)) {
        if (raw.charAt(raw.length - 1) === ')' && count(raw, '(') >= count(raw, ')')) break;
        raw = raw.slice(0, -1);
      }
      var start = m.index, end = start + raw.length;
      URL_RE.lastIndex = end;
      var href = safeHref(raw);
      if (start > last) parent.appendChild(document.createTextNode(text.slice(last, start)));
      if (href) {
        var a = document.createElement('a');
        a.href = href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer nofollow ugc';
        a.textContent = raw;
        parent.appendChild(a);
      } else {
        parent.appendChild(document.createTextNode(raw));
      }
      last = end;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function formatSize(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + ' KB';
    return (n / 1024 / 1024).toFixed(1) + ' MB';
  }

  // --- 2. DOM helpers and icons ----------------------------------------------

  /** el('div', 'cls', 'text') or el('button', 'cls', null, {type: 'button'}). */
  function el(tag, cls, text, attrs) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) n.setAttribute(k, attrs[k]);
    return n;
  }

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp']; // previewed in messages

  var ICONS = { // 24x24 stroke icons (static, never data)
    send: 'M4 12l16-8-6 16-2.5-6.5zM11.5 13.5L20 4',
    lock: 'M6 11h12v9H6zM8.5 11V8a3.5 3.5 0 017 0v3',
    box: 'M3.5 7.5L12 3l8.5 4.5v9L12 21l-8.5-4.5zM3.5 7.5L12 12l8.5-4.5M12 12v9',
    alert: 'M12 3.5l9.5 16.5h-19zM12 10v4.5M12 17.5v.01',
    info: 'M12 3a9 9 0 110 18 9 9 0 010-18zM12 11v5.5M12 7.5v.01',
    clock: 'M12 3a9 9 0 110 18 9 9 0 010-18zM12 7.5V12l3 2',
    check: 'M5 12.5l4.5 4.5L19 7.5',
    checks: 'M2.5 12.5L7 17l9.5-9.5M11.5 16l1 1L22 7.5',
    down: 'M12 5v14M6 13l6 6 6-6',
    file: 'M6 3h8l4 4v14H6zM14 3v4h4',
    clip: 'M20 11.5l-7.8 7.8a5 5 0 01-7.1-7.1l8.2-8.2a3.3 3.3 0 014.7 4.7l-8.1 8.1a1.7 1.7 0 01-2.4-2.4l7.4-7.4',
    x: 'M6 6l12 12M18 6L6 18',
    wifi: 'M4.5 10.5a11 11 0 0115 0M7.5 13.5a6.5 6.5 0 019 0M12 17v.01'
  };

  function icon(name, cls) {
    var svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', 'chatd-icon' + (cls ? ' ' + cls : ''));
    var path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  function ensureStylesheet(href) {
    var abs = new URL(href, global.location.href).href;
    var links = document.querySelectorAll('link[rel="stylesheet"]');
    for (var i = 0; i < links.length; i++) if (links[i].href === abs) return;
    var link = el('link', null, null, { rel: 'stylesheet', href: abs, 'data-chatd': '' });
    document.head.appendChild(link);
  }

  // --- 3. the widget ----------------------------------------------------------

  function Widget(root, opts) {
    if (!root || root.nodeType !== 1) throw new TypeError('ChatdWidget.mount: element required');
    if (!opts || !opts.order) throw new TypeError('ChatdWidget.mount: options.order required');
    if (!opts.token) throw new TypeError('ChatdWidget.mount: options.token required');
    this.host = root;
    this.opts = opts;
    this.order = String(opts.order);
    this.baseUrl = (opts.url || defaultBaseUrl()).replace(/\/+$/, '');
    this.wsUrl = wsUrlOf(this.baseUrl);
    this.pageSize = Math.max(1, Math.min(200, opts.pageSize || 50));
    this.maxLength = opts.maxLength || 4000;
    this.fmt = makeFormatters(opts.locale);
    this.uid = 'chatd-' + (++instances);

    // connection
    this.ws = null;
    this.state = 'connecting';    // connecting | online | reconnecting | closed
    this.ready = false;           // authenticated
    this.live = false;            // joined: sends go out, events come in
    this.everJoined = false;
    this.attempt = 0;
    this.lastRx = 0;
    this.fatal = null;
    this.authRetried = false;

    // model
    this.me = null;
    this.role = null;             // role in this order
    this.status = null;
    this.dispute = null;
    this.people = new Map();      // id -> {id, name, role, online}
    this.names = new Map();       // id -> name, learnt from senders (for dispute "by")
    this.msgs = new Map();        // seq -> {m, el}
    this.outbox = new Map();      // client_id -> {client_id, text, kind, created, state, error, el}
    this.oldestSeq = null;
    this.newestSeq = 0;
    this.liveAfter = 0;           // seq above which messages are live (announced)
    this.noMoreBefore = false;
    this.loadingMore = false;
    this.unread = 0;
    this.readSeq = 0;             // our read marker as far as we know
    this.dividerAfter = null;     // "new messages" divider before the first unread above this seq
    this.unreadPages = 0;         // earlier pages fetched to reach the first unread on opening
    this.receipts = new Map();    // user id -> seq
    this.typers = new Map();      // user id -> {name, timer}
    this.typingActive = false;
    this.typingSentAt = 0;
    this.noteMode = false;
    this.attached = [];           // files for the next message: {name, size, state, ref, error}
    this.thumbs = new Map();      // attachment id -> Promise of a blob: URL (images, fetched with the token)

    // view
    this.recs = new WeakMap();    // list element -> {ts, sender, kind, own}
    this.daySeps = new Map();
    this.intersecting = new Set();
    this.stick = true;
    this.initialAnchor = true;
    this.snap = null;
    this.renderQueued = false;
    this.listeners = [];
    this.timers = {};

    if (opts.css !== false) ensureStylesheet(typeof opts.css === 'string' ? opts.css : this.baseUrl + '/widget.css');
    this._build();
    this._bindGlobal();
    this._connect();
  }

  var W = Widget.prototype;

  // --- public API -------------------------------------------------------------

  /** Send a message (as the composer does). Returns its client_id. */
  W.send = function (text, options) {
    text = String(text == null ? '' : text).trim();
    var atts = (options && options.attachments) || [];
    if ((!text && !atts.length) || text.length > this.maxLength || this.fatal) return null;
    var note = !!(options && options.note) && this._mayWriteNotes();
    var item = { client_id: uuid(), text: text, kind: note ? 'note' : 'text', created: Date.now(), state: 'queued',
                 attachments: atts };
    this.outbox.set(item.client_id, item);
    this._saveOutbox();
    this.dividerAfter = null;
    this.initialAnchor = false;
    this._beginMutation(true);
    this._renderPending(item);
    this._transmit(item);
    return item.client_id;
  };

  /** Change the order status (supplier, staff, bot). */
  W.setStatus = function (status, text) {
    var f = { type: 'set_status', order: this.order, status: String(status), client_id: uuid() };
    if (text) f.text = String(text);
    return this._sendFrame(f);
  };

  /** Open (buyer, staff) or close (staff, opener) the order's dispute. */
  W.openDispute = function (reason) {
    return this._sendFrame({ type: 'dispute', order: this.order, action: 'open', client_id: uuid(), reason: reason || null });
  };
  W.closeDispute = function (reason) {
    return this._sendFrame({ type: 'dispute', order: this.order, action: 'close', client_id: uuid(), reason: reason || null });
  };

  /** Listen to a widget event ('ready', 'state', 'message', 'unread', 'order', 'error'). */
  W.on = function (name, fn) {
    var type = 'chatd:' + name;
    var wrapped = function (ev) { fn(ev.detail); };
    this.host.addEventListener(type, wrapped);
    var host = this.host;
    return function () { host.removeEventListener(type, wrapped); };
  };

  W.focus = function () { this.$input.focus(); };

  W.destroy = function () {
    if (this.destroyed) return;
    this.destroyed = true;
    this._typingStop();
    for (var k in this.timers) clearTimeout(this.timers[k]);
    clearInterval(this.heartbeat);
    this.typers.forEach(function (t) { clearTimeout(t.timer); });
    this.listeners.forEach(function (l) { l[0].removeEventListener(l[1], l[2]); });
    if (this.io) this.io.disconnect();
    if (this.thumbIo) this.thumbIo.disconnect();
    if (this.ro) this.ro.disconnect();
    this.thumbs.forEach(function (p) { p.then(function (url) { if (url) URL.revokeObjectURL(url); }); });
    if (this.ws) { this._detach(this.ws); this.ws.close(1000); }
    this.ws = null;
    if (this.root.parentNode) this.root.parentNode.removeChild(this.root);
  };

  W._emit = function (name, detail) {
    this.host.dispatchEvent(new CustomEvent('chatd:' + name, { detail: detail, bubbles: true }));
    var cb = this.opts['on' + name.charAt(0).toUpperCase() + name.slice(1)];
    if (typeof cb === 'function') {
      try { cb(detail); } catch (e) { setTimeout(function () { throw e; }); }
    }
  };

  W._timer = function (name, fn, ms) {
    clearTimeout(this.timers[name]);
    var self = this;
    this.timers[name] = setTimeout(function () { delete self.timers[name]; fn.call(self); }, ms);
  };

  W._listen = function (target, type, fn, options) {
    target.addEventListener(type, fn, options);
    this.listeners.push([target, type, fn]);
  };

  // --- building the DOM -----------------------------------------------------------

  W._build = function () {
    var self = this, id = this.uid;
    var root = this.root = el('section', 'chatd', null, { 'aria-label': this.opts.title || 'Order chat', 'data-state': 'connecting' });

    // header: title, unread badge, connection state, status chip, participants
    var head = el('header', 'chatd-head');
    var titleRow = el('div', 'chatd-title-row');
    var title = el('h2', 'chatd-title', this.opts.title || 'Order chat');
    this.$orderRef = el('span', 'chatd-order-ref', this.order);
    title.appendChild(this.$orderRef);
    this.$badge = el('span', 'chatd-badge', null, { hidden: '' });
    this.$conn = el('span', 'chatd-conn', null, { role: 'status', hidden: '' });
    titleRow.appendChild(title);
    titleRow.appendChild(this.$badge);
    titleRow.appendChild(this.$conn);
    var meta = el('div', 'chatd-meta');
    this.$status = el('span', 'chatd-status', null, { hidden: '' });
    this.$people = el('ul', 'chatd-people', null, { 'aria-label': 'Participants' });
    meta.appendChild(this.$status);
    meta.appendChild(this.$people);
    head.appendChild(titleRow);
    head.appendChild(meta);

    // open-dispute banner
    this.$dispute = el('div', 'chatd-dispute', null, { role: 'status', hidden: '' });

    // message list
    var body = el('div', 'chatd-body');
    this.$scroll = el('div', 'chatd-scroll', null, { tabindex: '0', role: 'region', 'aria-label': 'Messages' });
    this.$top = el('div', 'chatd-top');
    this.$list = el('div', 'chatd-list', null, { role: 'list' });
    this.$empty = el('div', 'chatd-empty', 'Connecting…');
    this.$scroll.appendChild(this.$top);
    this.$scroll.appendChild(this.$list);
    this.$scroll.appendChild(this.$empty);
    this.$jump = el('button', 'chatd-jump', null, { type: 'button', hidden: '' });
    this.$jump.appendChild(icon('down'));
    this.$jumpText = el('span', null, 'Latest');
    this.$jump.appendChild(this.$jumpText);
    body.appendChild(this.$scroll);
    body.appendChild(this.$jump);
    this.$divider = el('div', 'chatd-divider', null, { role: 'listitem' });
    this.$divider.appendChild(el('span', null, 'New messages'));

    // typing line
    this.$typing = el('div', 'chatd-typing', null, { hidden: '' });
    this.$typingText = el('span');
    var dots = el('span', 'chatd-dots', null, { 'aria-hidden': 'true' });
    dots.appendChild(el('i')); dots.appendChild(el('i')); dots.appendChild(el('i'));
    this.$typing.appendChild(dots);
    this.$typing.appendChild(this.$typingText);

    // composer
    var form = this.$form = el('form', 'chatd-composer', null, { novalidate: '' });
    var row = el('div', 'chatd-compose-row');
    var label = el('label', 'chatd-sr', 'Message', { for: id + '-input' });
    this.$input = el('textarea', 'chatd-input', null, {
      id: id + '-input', rows: '1', placeholder: 'Write a message…', 'aria-describedby': id + '-hint',
      enterkeyhint: 'send', autocomplete: 'off'
    });
    this.$send = el('button', 'chatd-send', null, { type: 'submit', 'aria-label': 'Send', disabled: '' });
    this.$send.appendChild(icon('send'));
    this.$send.appendChild(el('span', 'chatd-send-label', 'Send'));
    this.$attach = el('button', 'chatd-attach', null, { type: 'button', 'aria-label': 'Attach files', title: 'Attach files' });
    this.$attach.appendChild(icon('clip'));
    this.$file = el('input', 'chatd-sr', null, { type: 'file', multiple: '', tabindex: '-1', 'aria-hidden': 'true' });
    this.$chips = el('ul', 'chatd-chips', null, { 'aria-label': 'Files to send', hidden: '' });
    row.appendChild(label);
    row.appendChild(this.$attach);
    row.appendChild(this.$file);
    row.appendChild(this.$input);
    row.appendChild(this.$send);
    var foot = el('div', 'chatd-compose-foot');
    // appended only for roles that may write notes (see _onJoined)
    this.$note = el('button', 'chatd-note-toggle', null, {
      type: 'button', 'aria-pressed': 'false',
      title: 'Internal notes are seen by the supplier, sales rep and staff, never by the buyer'
    });
    this.$note.appendChild(icon('lock'));
    this.$note.appendChild(el('span', null, 'Internal note'));
    this.$hint = el('span', 'chatd-hint', 'Enter to send · Shift+Enter for a new line', { id: id + '-hint' });
    this.$count = el('span', 'chatd-count', null, { 'aria-live': 'polite' });
    foot.appendChild(this.$hint);
    foot.appendChild(this.$count);
    form.appendChild(this.$chips);
    form.appendChild(row);
    form.appendChild(foot);

    this.$closed = el('div', 'chatd-closed', null, { role: 'alert', hidden: '' });
    this.$live = el('div', 'chatd-sr', null, { 'aria-live': 'polite', 'aria-atomic': 'false' });

    [head, this.$dispute, body, this.$typing, form, this.$closed, this.$live].forEach(function (n) { root.appendChild(n); });
    this.host.appendChild(root);

    // behaviour
    this._listen(form, 'submit', function (e) { e.preventDefault(); self._submit(); });
    this._listen(this.$input, 'keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        self._submit();
      }
    });
    this._listen(this.$input, 'input', function () { self._onInput(); });
    this._listen(this.$input, 'blur', function () { self._typingStop(); });
    this._listen(this.$note, 'click', function () { self._setNoteMode(!self.noteMode); });
    this._listen(this.$attach, 'click', function () { self.$file.click(); });
    this._listen(this.$file, 'change', function () {
      Array.prototype.forEach.call(self.$file.files || [], function (f) { self._attach(f); });
      self.$file.value = '';
    });
    this._listen(this.$jump, 'click', function () { self._scrollToBottom(true); self.$input.focus({ preventScroll: true }); });
    this._listen(this.$scroll, 'scroll', function () { self._onScroll(); }, { passive: true });
    // The first screen is kept on the "new messages" divider while the replay
    // arrives, until the reader does anything.
    ['wheel', 'touchstart', 'keydown', 'pointerdown'].forEach(function (t) {
      self._listen(root, t, function () { self.initialAnchor = false; }, { passive: true });
    });

    // The banner, the typing line or the host page can shrink the list: a
    // reader at the newest message stays there.
    if (typeof ResizeObserver === 'function') {
      this.ro = new ResizeObserver(function () {
        if (self.stick) self._scrollTo(self.$scroll.scrollHeight);
      });
      this.ro.observe(this.$scroll);
    }
    if (typeof IntersectionObserver === 'function') {
      // image previews load when they come near the view, not for all of history at once
      this.thumbIo = new IntersectionObserver(function (entries) {
        entries.forEach(function (e) {
          if (!e.isIntersecting) return;
          self.thumbIo.unobserve(e.target);
          self._loadThumb(e.target);
        });
      }, { root: this.$scroll, rootMargin: '300px 0px' });
      this.io = new IntersectionObserver(function (entries) { self._onIntersect(entries); }, { threshold: [0, 0.5, 1] });
    }
  };

  W._bindGlobal = function () {
    var self = this;
    this._listen(document, 'visibilitychange', function () {
      if (document.visibilityState === 'visible') {
        self._maybeRead();
        if (self.ws && self.ready) self._ping();
      }
    });
    this._listen(global, 'online', function () {
      if (!self.ws && !self.fatal && !self.destroyed) {
        clearTimeout(self.timers.reconnect);
        self.attempt = 0;
        self._connect();
      }
    });
    this.heartbeat = setInterval(function () { self._checkAlive(); }, 5000);
  };

  // --- connection -------------------------------------------------------------------

  W._setState = function (state, text) {
    this.state = state;
    this.root.setAttribute('data-state', state);
    var show = state === 'reconnecting';
    this.$conn.hidden = !show;
    this.$conn.textContent = '';
    if (show) {
      this.$conn.appendChild(el('span', 'chatd-conn-dot', null, { 'aria-hidden': 'true' }));
      this.$conn.appendChild(document.createTextNode(text || 'Reconnecting…'));
    }
    this._updatePendingStates();
    this._emit('state', { state: state });
  };

  W._connect = function () {
    var self = this;
    if (this.destroyed || this.fatal || this.ws) return;
    this._setState(this.everJoined ? 'reconnecting' : 'connecting');
    var tok = this.opts.token;
    Promise.resolve(typeof tok === 'function' ? tok() : tok).then(function (token) {
      if (self.destroyed || self.fatal || self.ws) return;
      var ws;
      try {
        ws = new WebSocket(self.wsUrl);
      } catch (e) {
        self._scheduleReconnect();
        return;
      }
      self.ws = ws;
      self.lastRx = Date.now();
      ws.onopen = function () { ws.send(JSON.stringify({ type: 'auth', token: String(token) })); };
      ws.onmessage = function (ev) {
        if (ws !== self.ws) return;
        self.lastRx = Date.now();
        var f;
        try { f = JSON.parse(ev.data); } catch (e) { return; }
        if (f && typeof f === 'object') self._onFrame(f);
      };
      ws.onclose = function (ev) { if (ws === self.ws) self._onClose(ev.code, ev.reason); };
      ws.onerror = function () { /* a close event follows */ };
    }, function () { self._scheduleReconnect(); });
  };

  W._detach = function (ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  };

  W._onClose = function (code) {
    if (this.ws) this._detach(this.ws);
    this.ws = null;
    this.ready = false;
    this.live = false;
    this.loadingMore = false;
    this._typingStop();
    this._clearTypers();
    this.people.forEach(function (p) { p.online = false; }); // unknown until we are back
    this._renderPeople();
    if (this.destroyed || this.fatal) return;
    if (code === 4401) {
      if (typeof this.opts.token === 'function' && !this.authRetried) {
        this.authRetried = true;
        this._scheduleReconnect();
      } else {
        this._fail('Your chat session has expired. Reload the page to continue.', 'unauthorized');
      }
      return;
    }
    this._scheduleReconnect(code === 4429 ? 10000 : 0);
  };

  W._scheduleReconnect = function (minDelay) {
    if (this.destroyed || this.fatal) return;
    this._setState(this.everJoined ? 'reconnecting' : 'connecting');
    this.attempt += 1;
    var exp = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt - 1));
    var delay = Math.max(minDelay || 0, exp / 2 + Math.random() * exp / 2); // "equal jitter"
    this._timer('reconnect', this._connect, delay);
  };

  W._checkAlive = function () {
    if (!this.ws || !this.ready) return;
    var idle = Date.now() - this.lastRx;
    if (idle > DEAD_AFTER_MS) {
      var ws = this.ws;
      this._detach(ws);
      try { ws.close(4000, 'no answer'); } catch (e) { /* already closing */ }
      this._onClose(4000);
    } else if (idle > PING_AFTER_MS) {
      this._ping();
    }
  };

  W._ping = function () { this._sendRaw({ type: 'ping' }); };

  W._sendRaw = function (frame) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  };

  /** Send a frame that needs the order joined; false if offline. */
  W._sendFrame = function (frame) {
    if (!this.live) return false;
    return this._sendRaw(frame);
  };

  W._fail = function (text, code) {
    this.fatal = code || 'closed';
    clearTimeout(this.timers.reconnect);
    if (this.ws) { var ws = this.ws; this._detach(ws); ws.close(1000); this.ws = null; }
    this.live = false;
    this._setState('closed');
    this.$closed.textContent = text;
    this.$closed.hidden = false;
    this.$form.hidden = true;
    this.$typing.hidden = true;
    this.$empty.hidden = true;
    this._emit('error', { code: this.fatal, message: text, fatal: true });
  };

  // --- frames from the server ----------------------------------------------------------

  W._onFrame = function (f) {
    if (f.order != null && f.order !== this.order) return;
    switch (f.type) {
      case 'ready': return this._onReady(f);
      case 'joined': return this._onJoined(f);
      case 'message': return this._onMessage(f, false);
      case 'ack': return this._onAck(f);
      case 'history': return this._onHistory(f);
      case 'typing': return this._onTyping(f);
      case 'receipt': return this._onReceipt(f);
      case 'unread': return this._setUnread(f.count, f.total);
      case 'presence': return this._onPresence(f);
      case 'order': return this._onOrder(f);
      case 'left': return this._onLeft(f);
      case 'error': return this._onError(f);
      default: return undefined; // pong, and frame types added later
    }
  };

  W._onReady = function (f) {
    this.ready = true;
    this.authRetried = false;
    this.me = f.user;
    this._loadOutbox();
    var join = { type: 'join', order: this.order };
    if (this.everJoined) join.since = this.newestSeq;
    this.joining = true;
    this._sendRaw(join);
    this._emit('ready', { user: f.user });
  };

  W._onJoined = function (f) {
    var first = !this.everJoined;
    this.joining = false;
    this.live = true;
    this.everJoined = true;
    this.attempt = 0;
    this._beginMutation();
    if (f.truncated) this._dropConfirmed(); // a gap: start over from the replayed newest page
    this.liveAfter = f.last_seq;
    this.readSeq = Math.max(this.readSeq, f.read_seq || 0);
    if (first && f.unread > 0) this.dividerAfter = f.read_seq;
    if (first) {
      var self = this;
      // Kept while the replay arrives; ends after the first render past this.
      this.awaitReplay = f.last_seq > 0;
      this._timer('anchor', function () { self.anchorExpired = true; self._scheduleRender(); }, 800);
    }
    this._setPeople(f.participants);
    this._setOrder(f.status, f.dispute);
    this._setUnread(f.unread, null);
    this.$empty.hidden = true;
    if (this._mayWriteNotes()) {
      if (!this.$note.parentNode) this.$hint.parentNode.insertBefore(this.$note, this.$hint);
    } else if (this.$note.parentNode) {
      this.$note.parentNode.removeChild(this.$note);
      this._setNoteMode(false);
    }
    this._setState('online');
    this._flushOutbox();
  };

  W._onMessage = function (m, fromHistory) {
    if (typeof m.seq !== 'number' || this.msgs.has(m.seq)) return; // dedupe by seq
    var own = this.me && m.sender && m.sender.id === this.me.id;
    var live = !fromHistory && m.seq > this.liveAfter;
    this._beginMutation(own && live); // one's own doing (also from another tab): show it
    if (m.sender) this.names.set(m.sender.id, m.sender.name);
    if (own && m.client_id && this.outbox.has(m.client_id)) this._settle(m.client_id);
    if (live && !own) {
      if (this.unread === 0 && (document.visibilityState !== 'visible' || !this.snap.stick)) this.dividerAfter = m.seq - 1;
      this._stopTyper(m.sender.id);
      this._announce(m);
    }
    this._insertMessage(m);
    this.awaitReplay = false;
    this._emit('message', { message: m, own: !!own, live: live });
  };

  W._onAck = function (f) {
    var item = this.outbox.get(f.client_id);
    if (this.readSeq < f.seq) this.readSeq = f.seq; // sending moves our read marker
    if (!item) return;
    this._beginMutation();
    this._settle(f.client_id);
    if (!this.msgs.has(f.seq) && !(f.duplicate && this.oldestSeq != null && f.seq < this.oldestSeq)) {
      // The ack came before the message itself (or the message was stored by an
      // earlier attempt): show it as stored; the `message` frame dedupes by seq.
      this._insertMessage({
        order: this.order, seq: f.seq, ts: f.ts, kind: item.kind, text: item.text, client_id: item.client_id,
        sender: { id: this.me.id, name: this.me.name, role: this.role || this.me.role }, attachments: item.attachments || []
      });
    }
  };

  W._onHistory = function (f) {
    this.loadingMore = false;
    this._beginMutation();
    var msgs = f.messages || [];
    for (var i = 0; i < msgs.length; i++) this._onMessage(msgs[i], true);
    if (!f.has_more) this.noMoreBefore = true;
  };

  W._onTyping = function (f) {
    if (!f.user || (this.me && f.user.id === this.me.id)) return;
    if (f.active) {
      var self = this, id = f.user.id, t = this.typers.get(id);
      if (t) clearTimeout(t.timer);
      this.typers.set(id, {
        name: f.user.name,
        timer: setTimeout(function () { self._stopTyper(id); }, TYPING_SHOW_MS)
      });
      this._renderTyping();
    } else {
      this._stopTyper(f.user.id);
    }
  };

  W._onReceipt = function (f) {
    if (this.me && f.user === this.me.id) {
      if (f.seq > this.readSeq) this.readSeq = f.seq;
      return;
    }
    if ((this.receipts.get(f.user) || 0) < f.seq) {
      this.receipts.set(f.user, f.seq);
      this._scheduleRender();
    }
  };

  W._onPresence = function (f) {
    var p = this.people.get(f.user);
    if (p) { p.online = !!f.online; this._renderPeople(); }
  };

  W._onOrder = function (f) {
    if (f.participants) this._setPeople(f.participants);
    this._setOrder(f.status, f.dispute);
  };

  W._onLeft = function (f) {
    if (f.reason === 'removed') this._fail('You no longer have access to this order’s chat.', 'removed');
  };

  W._onError = function (f) {
    var item = f.ref != null ? this.outbox.get(f.ref) : null;
    if (item) {
      if (f.code === 'rate_limited' || f.code === 'unavailable' || f.code === 'internal') {
        item.state = 'queued';
        this._timer('retry', this._flushOutbox, RETRY_LATER_MS);
      } else {
        item.state = 'failed';
        item.error = f.message || f.code;
        this._saveOutbox();
      }
      this._renderPendingState(item);
    } else if (f.ref === this.order && this.joining) {
      this._fail('This order’s chat is not available.', f.code);
      return;
    } else if (f.ref === this.order && this.loadingMore) {
      this.loadingMore = false;
    }
    this._emit('error', { code: f.code, message: f.message, ref: f.ref });
  };

  // --- order state, people, unread -------------------------------------------------------

  W._setPeople = function (list) {
    if (!Array.isArray(list)) return;
    var people = new Map();
    list.forEach(function (p) { people.set(p.id, { id: p.id, name: p.name, role: p.role, online: !!p.online }); });
    this.people = people;
    var mine = this.me && people.get(this.me.id);
    this.role = mine ? mine.role : (this.me ? this.me.role : null);
    this._renderPeople();
  };

  W._setOrder = function (status, dispute) {
    var changed = status !== this.status || JSON.stringify(dispute) !== JSON.stringify(this.dispute);
    this.status = status;
    this.dispute = dispute || null;
    this.$status.hidden = !status;
    this.$status.textContent = '';
    if (status) {
      this.$status.appendChild(el('span', 'chatd-sr', 'Order status: '));
      this.$status.appendChild(document.createTextNode(humanize(status)));
      this.$status.setAttribute('data-status', String(status).toLowerCase());
    }
    this._renderDispute();
    if (changed) this._emit('order', { status: status, dispute: this.dispute });
  };

  W._setUnread = function (n, total) {
    this.unread = Math.max(0, n | 0);
    this.$badge.hidden = this.unread === 0;
    this.$badge.textContent = this.unread > 99 ? '99+' : String(this.unread);
    this.$badge.setAttribute('aria-label', this.unread + ' unread message' + (this.unread === 1 ? '' : 's'));
    this.$badge.title = this.$badge.getAttribute('aria-label');
    this._renderJump();
    this._emit('unread', { count: this.unread, total: total });
  };

  W._nameOf = function (id) {
    var p = this.people.get(id);
    if (p) return p.name;
    if (this.me && id === this.me.id) return this.me.name;
    return this.names.get(id) || id;
  };

  W._mayWriteNotes = function () {
    return NOTE_WRITERS.indexOf(this.role) >= 0;
  };

  // --- outbox: pending, queued, retried with the same client_id ---------------------------------

  W._storageKey = function () {
    return this.me ? 'chatd:outbox:v1:' + this.wsUrl + ':' + this.order + ':' + this.me.id : null;
  };

  W._saveOutbox = function () {
    var key = this._storageKey();
    if (!key || this.opts.persist === false) return;
    var items = [];
    this.outbox.forEach(function (it) {
      if (it.state !== 'failed') {
        items.push({ client_id: it.client_id, text: it.text, kind: it.kind, created: it.created, attachments: it.attachments || [] });
      }
    });
    try {
      if (items.length) global.localStorage.setItem(key, JSON.stringify(items));
      else global.localStorage.removeItem(key);
    } catch (e) { /* storage full or disabled: the in-memory queue still works */ }
  };

  /** Messages typed in an earlier visit that never got their ack (same client_id: no doubles). */
  W._loadOutbox = function () {
    var key = this._storageKey();
    if (!key || this.opts.persist === false || this.outboxLoaded) return;
    this.outboxLoaded = true;
    var items = [];
    try { items = JSON.parse(global.localStorage.getItem(key) || '[]'); } catch (e) { items = []; }
    if (!Array.isArray(items)) return;
    var self = this;
    items.forEach(function (it) {
      if (!it || typeof it.client_id !== 'string' || typeof it.text !== 'string' || self.outbox.has(it.client_id)) return;
      var atts = Array.isArray(it.attachments) ? it.attachments.filter(function (a) {
        return a && typeof a.id === 'string' && typeof a.name === 'string';
      }) : [];
      var item = { client_id: it.client_id, text: it.text, kind: it.kind === 'note' ? 'note' : 'text',
                   created: +it.created || Date.now(), state: 'queued', attachments: atts };
      self.outbox.set(item.client_id, item);
      self._beginMutation();
      self._renderPending(item);
    });
    if (this.outbox.size) this._saveOutbox();
  };

  W._transmit = function (item) {
    if (item.state === 'failed') return;
    var f = { type: 'send', order: this.order, client_id: item.client_id, text: item.text, kind: item.kind };
    if (item.attachments && item.attachments.length) f.attachments = item.attachments.map(function (a) { return a.id; });
    if (this._sendFrame(f)) {
      item.state = 'sending';
    } else {
      item.state = 'queued';
    }
    this._renderPendingState(item);
  };

  W._flushOutbox = function () {
    var self = this;
    this.outbox.forEach(function (item) { if (item.state !== 'failed') self._transmit(item); });
  };

  /** The server has the message: drop it from the outbox and its pending bubble. */
  W._settle = function (clientId) {
    var item = this.outbox.get(clientId);
    if (!item) return;
    this.outbox.delete(clientId);
    this._saveOutbox();
    if (item.el && item.el.parentNode) item.el.parentNode.removeChild(item.el);
  };

  W._updatePendingStates = function () {
    var self = this;
    if (this.outbox) this.outbox.forEach(function (it) { self._renderPendingState(it); });
  };

  // --- composer -----------------------------------------------------------------------

  W._submit = function () {
    var text = this.$input.value;
    var ready = this.attached.filter(function (a) { return a.state === 'ready'; });
    if (this._uploading() || (!text.trim() && !ready.length) || text.trim().length > this.maxLength || this.fatal) return;
    this._typingStop();
    this.send(text, { note: this.noteMode, attachments: ready.map(function (a) { return a.ref; }) });
    this.$input.value = '';
    this.attached = [];
    this._renderChips();
    this._autosize();
    this._updateComposer();
  };

  // --- attachments in the composer --------------------------------------------------

  W._uploading = function () {
    return this.attached.some(function (a) { return a.state === 'uploading'; });
  };

  /** Upload a chosen file at once (the server checks its content, not its name). */
  W._attach = function (file) {
    var self = this, a = { name: file.name || 'file', size: file.size, state: 'uploading', ref: null, error: null };
    this.attached.push(a);
    this._renderChips();
    this._updateComposer();
    var tok = this.opts.token;
    Promise.resolve(typeof tok === 'function' ? tok() : tok).then(function (token) {
      var body = new FormData();
      body.append('file', file, a.name);
      return fetch(self.baseUrl + '/api/v1/orders/' + encodeURIComponent(self.order) + '/attachments', {
        method: 'POST', body: body, headers: { Authorization: 'Bearer ' + token }
      });
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error((data && data.error && data.error.message) || ('upload failed (HTTP ' + r.status + ')'));
        return data;
      });
    }).then(function (ref) {
      a.state = 'ready';
      a.ref = { id: ref.id, name: ref.name, mime: ref.mime, size: ref.size };
      a.name = ref.name;
    }).catch(function (e) {
      a.state = 'failed';
      a.error = String(e && e.message || e);
    }).then(function () {
      if (self.destroyed) return;
      self._renderChips();
      self._updateComposer();
    });
  };

  W._renderChips = function () {
    var self = this, ul = this.$chips;
    ul.textContent = '';
    ul.hidden = !this.attached.length;
    this.attached.forEach(function (a) {
      var li = el('li', 'chatd-chip chatd-chip--' + a.state);
      li.appendChild(icon(a.state === 'failed' ? 'alert' : 'file'));
      li.appendChild(el('span', 'chatd-att-name', a.name));
      li.appendChild(el('span', 'chatd-att-size', a.state === 'uploading' ? 'uploading…'
        : a.state === 'failed' ? a.error : formatSize(a.size || 0)));
      var rm = el('button', 'chatd-chip-remove', null, { type: 'button', 'aria-label': 'Remove ' + a.name });
      rm.appendChild(icon('x'));
      rm.addEventListener('click', function () {
        self.attached = self.attached.filter(function (x) { return x !== a; });
        self._renderChips();
        self._updateComposer();
      });
      li.appendChild(rm);
      ul.appendChild(li);
    });
  };

  W._onInput = function () {
    this._autosize();
    this._updateComposer();
    if (!this.$input.value.trim()) { this._typingStop(); return; }
    var now = Date.now();
    if ((!this.typingActive || now - this.typingSentAt > TYPING_REFRESH_MS) && this.live) {
      if (this._sendFrame({ type: 'typing', order: this.order, active: true })) {
        this.typingActive = true;
        this.typingSentAt = now;
      }
    }
    this._timer('typingIdle', this._typingStop, TYPING_IDLE_MS);
  };

  W._typingStop = function () {
    clearTimeout(this.timers.typingIdle);
    if (this.typingActive) {
      this.typingActive = false;
      this._sendFrame({ type: 'typing', order: this.order, active: false });
    }
  };

  W._autosize = function () {
    var ta = this.$input;
    ta.style.height = 'auto';
    ta.style.height = Math.min(ta.scrollHeight + 2, 160) + 'px';
  };

  W._updateComposer = function () {
    var n = this.$input.value.trim().length;
    var files = this.attached.some(function (a) { return a.state === 'ready'; });
    this.$send.disabled = (n === 0 && !files) || n > this.maxLength || this._uploading();
    var left = this.maxLength - n;
    this.$count.textContent = left < 200 ? (left >= 0 ? left + ' characters left' : 'Too long by ' + (-left) + ' characters') : '';
    this.$count.classList.toggle('chatd-count--over', left < 0);
  };

  W._setNoteMode = function (on) {
    this.noteMode = !!on && this._mayWriteNotes();
    this.$note.setAttribute('aria-pressed', String(this.noteMode));
    this.$form.classList.toggle('chatd-composer--note', this.noteMode);
    this.$input.placeholder = this.noteMode ? 'Write an internal note (never shown to the buyer)…' : 'Write a message…';
  };

  // --- typing indicator ----------------------------------------------------------------

  W._stopTyper = function (id) {
    var t = this.typers.get(id);
    if (!t) return;
    clearTimeout(t.timer);
    this.typers.delete(id);
    this._renderTyping();
  };

  W._clearTypers = function () {
    this.typers.forEach(function (t) { clearTimeout(t.timer); });
    this.typers.clear();
    this._renderTyping();
  };

  W._renderTyping = function () {
    var names = [];
    this.typers.forEach(function (t) { names.push(firstName(t.name)); });
    this.$typing.hidden = names.length === 0;
    this.$typingText.textContent = names.length === 0 ? '' :
      names.length === 1 ? names[0] + ' is typing…' :
      names.length === 2 ? names[0] + ' and ' + names[1] + ' are typing…' : 'Several people are typing…';
  };

  // --- messages in the list --------------------------------------------------------------

  W._insertMessage = function (m) {
    var own = !!(this.me && m.sender && m.sender.id === this.me.id);
    var node = this._messageEl(m, own);
    this.recs.set(node, { ts: m.ts, sender: m.sender ? m.sender.id : '', kind: m.kind, own: own, seq: m.seq });
    this.msgs.set(m.seq, { m: m, el: node });
    // Position by seq: before the first later message, or before the pending ones.
    var list = this.$list, ref = null, n;
    if (this.oldestSeq !== null && m.seq < this.oldestSeq) {
      for (n = list.firstElementChild; n; n = n.nextElementSibling) if (n.hasAttribute('data-seq') || n.hasAttribute('data-cid')) { ref = n; break; }
    } else {
      for (n = list.lastElementChild; n; n = n.previousElementSibling) {
        if (n.hasAttribute('data-cid')) { ref = n; continue; }
        if (!n.hasAttribute('data-seq')) continue;
        if (+n.getAttribute('data-seq') < m.seq) break;
        ref = n;
      }
    }
    list.insertBefore(node, ref);
    if (this.oldestSeq === null || m.seq < this.oldestSeq) this.oldestSeq = m.seq;
    if (m.seq > this.newestSeq) this.newestSeq = m.seq;
    if (!own && this.io) this.io.observe(node);
  };

  /** Forget every stored message (after a truncated resume); pending ones stay. */
  W._dropConfirmed = function () {
    var self = this;
    this.msgs.forEach(function (v) {
      if (self.io) self.io.unobserve(v.el);
      if (v.el.parentNode) v.el.parentNode.removeChild(v.el);
    });
    this.msgs.clear();
    this.intersecting.clear();
    this.oldestSeq = null;
    this.noMoreBefore = false;
  };

  W._messageEl = function (m, own) {
    var kind = m.kind || 'text';
    if (EVENT_KINDS.indexOf(kind) >= 0) return this._eventEl(m);
    var sender = m.sender || { id: '', name: '', role: '' };
    var node = el('div', 'chatd-msg chatd-msg--' + kind + (own ? ' chatd-msg--own' : ''), null, {
      role: 'listitem', 'data-seq': String(m.seq), 'data-kind': kind
    });
    if (!own) {
      var av = el('span', 'chatd-avatar chatd-role-' + sender.role, initials(sender.name), { 'aria-hidden': 'true' });
      node.appendChild(av);
    }
    var main = el('div', 'chatd-msg-main');
    main.appendChild(this._headEl(sender, m.ts, own));
    var bubble = el('div', 'chatd-bubble');
    if (kind === 'note') {
      var tag = el('span', 'chatd-note-tag');
      tag.appendChild(icon('lock'));
      tag.appendChild(el('span', null, 'Internal note'));
      bubble.appendChild(tag);
    }
    bubble.appendChild(this._textEl(m.text));
    if (m.attachments && m.attachments.length) bubble.appendChild(this._attachmentsEl(m.attachments));
    main.appendChild(bubble);
    if (own) main.appendChild(el('div', 'chatd-msg-foot'));
    node.appendChild(main);
    return node;
  };

  W._headEl = function (sender, ts, own) {
    var head = el('div', 'chatd-msg-head');
    head.appendChild(el('span', 'chatd-name', own ? 'You' : sender.name));
    if (!own && sender.role) head.appendChild(el('span', 'chatd-role chatd-role-' + sender.role, roleLabel(sender.role)));
    if (ts) head.appendChild(this._timeEl(ts));
    return head;
  };

  W._timeEl = function (ts) {
    return el('time', 'chatd-time', this.fmt.time(ts), { datetime: new Date(ts).toISOString(), title: this.fmt.full(ts) });
  };

  W._textEl = function (text) {
    var t = el('div', 'chatd-text', null, { dir: 'auto' });
    appendLinkified(t, String(text == null ? '' : text));
    return t;
  };

  W._eventEl = function (m) {
    var kind = m.kind;
    var node = el('div', 'chatd-event chatd-event--' + kind, null, { role: 'listitem', 'data-seq': String(m.seq), 'data-kind': kind });
    var card = el('div', 'chatd-event-card');
    card.appendChild(icon(kind === 'status' ? 'box' : kind === 'dispute' ? 'alert' : 'info', 'chatd-event-icon'));
    var bodyEl = el('div', 'chatd-event-body');
    if (kind === 'status' && m.status) {
      var chip = el('span', 'chatd-event-status', humanize(m.status));
      bodyEl.appendChild(chip);
    }
    bodyEl.appendChild(this._textEl(m.text));
    var meta = el('div', 'chatd-event-meta');
    if (m.sender && m.sender.id !== 'system') {
      meta.appendChild(el('span', 'chatd-name', m.sender.name));
      if (m.sender.role) meta.appendChild(el('span', 'chatd-role chatd-role-' + m.sender.role, roleLabel(m.sender.role)));
    }
    meta.appendChild(this._timeEl(m.ts));
    bodyEl.appendChild(meta);
    card.appendChild(bodyEl);
    node.appendChild(card);
    return node;
  };

  W._attachmentsEl = function (atts) {
    var self = this, wrap = el('ul', 'chatd-atts', null, { 'aria-label': 'Attachments' });
    atts.forEach(function (a) {
      var li = el('li');
      var b = el('button', 'chatd-att', null, { type: 'button', title: 'Download ' + a.name });
      if (IMAGE_TYPES.indexOf(a.mime) >= 0) {
        // a preview of the (sniffed) image, fetched with the token like a download
        var img = el('img', 'chatd-thumb', null, { alt: a.name, 'data-att': a.id });
        b.classList.add('chatd-att--image');
        b.appendChild(img);
        if (self.thumbIo) self.thumbIo.observe(img);
        else self._loadThumb(img);
      }
      b.appendChild(icon('file'));
      b.appendChild(el('span', 'chatd-att-name', a.name));
      b.appendChild(el('span', 'chatd-att-size', formatSize(a.size || 0)));
      b.addEventListener('click', function () { self._download(a); });
      li.appendChild(b);
      wrap.appendChild(li);
    });
    return wrap;
  };

  W._loadThumb = function (img) {
    var self = this, id = img.getAttribute('data-att');
    if (!this.thumbs.has(id)) {
      var tok = this.opts.token;
      this.thumbs.set(id, Promise.resolve(typeof tok === 'function' ? tok() : tok).then(function (token) {
        return fetch(self.baseUrl + '/api/v1/attachments/' + encodeURIComponent(id), { headers: { Authorization: 'Bearer ' + token } });
      }).then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.blob();
      }).then(function (blob) { return URL.createObjectURL(blob); }).catch(function () {
        self.thumbs.delete(id); // shown as a plain file button; tried again on the next render
        return null;
      }));
    }
    this.thumbs.get(id).then(function (url) {
      if (url && !self.destroyed) img.src = url;
      else if (img.parentNode) img.parentNode.removeChild(img);
    });
  };

  /** Attachments need the token: fetch, then hand the browser a blob URL. */
  W._download = function (a) {
    var self = this, tok = this.opts.token;
    Promise.resolve(typeof tok === 'function' ? tok() : tok).then(function (token) {
      return fetch(self.baseUrl + '/api/v1/attachments/' + encodeURIComponent(a.id), { headers: { Authorization: 'Bearer ' + token } });
    }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.blob();
    }).then(function (blob) {
      var url = URL.createObjectURL(blob);
      var link = el('a', null, null, { href: url, download: a.name, rel: 'noopener' });
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
    }).catch(function (e) {
      self._emit('error', { code: 'attachment', message: String(e && e.message || e) });
    });
  };

  W._renderPending = function (item) {
    var node = el('div', 'chatd-msg chatd-msg--own chatd-msg--pending chatd-msg--' + item.kind, null, {
      role: 'listitem', 'data-cid': item.client_id, 'data-kind': item.kind
    });
    var main = el('div', 'chatd-msg-main');
    var head = el('div', 'chatd-msg-head');
    head.appendChild(el('span', 'chatd-name', 'You'));
    main.appendChild(head);
    var bubble = el('div', 'chatd-bubble');
    if (item.kind === 'note') {
      var tag = el('span', 'chatd-note-tag');
      tag.appendChild(icon('lock'));
      tag.appendChild(el('span', null, 'Internal note'));
      bubble.appendChild(tag);
    }
    if (item.text) bubble.appendChild(this._textEl(item.text));
    if (item.attachments && item.attachments.length) bubble.appendChild(this._attachmentsEl(item.attachments));
    main.appendChild(bubble);
    main.appendChild(el('div', 'chatd-msg-foot'));
    node.appendChild(main);
    item.el = node;
    this.recs.set(node, { ts: item.created, sender: this.me ? this.me.id : '', kind: item.kind, own: true, seq: null });
    this.$list.appendChild(node);
    this._renderPendingState(item);
  };

  W._renderPendingState = function (item) {
    if (!item.el) return;
    var self = this;
    var foot = item.el.querySelector('.chatd-msg-foot');
    foot.textContent = '';
    item.el.classList.toggle('chatd-msg--failed', item.state === 'failed');
    if (item.state === 'failed') {
      foot.appendChild(icon('alert'));
      foot.appendChild(el('span', null, 'Not sent: ' + item.error + ' '));
      var retry = el('button', 'chatd-link-btn', 'Retry', { type: 'button' });
      retry.addEventListener('click', function () { item.state = 'queued'; item.error = null; self._saveOutbox(); self._transmit(item); });
      var drop = el('button', 'chatd-link-btn', 'Delete', { type: 'button' });
      drop.addEventListener('click', function () { self._settle(item.client_id); self._scheduleRender(); });
      foot.appendChild(retry);
      foot.appendChild(drop);
    } else {
      foot.appendChild(icon('clock'));
      foot.appendChild(el('span', null, this.live ? 'Sending…' : 'Waiting for connection…'));
    }
  };

  W._announce = function (m) {
    var who = m.sender ? m.sender.name : '';
    var text = String(m.text || '');
    if (text.length > 160) text = text.slice(0, 157) + '…';
    var prefix = m.kind === 'note' ? 'Internal note from ' + who : m.kind === 'text' ? who : humanize(m.kind) + ' update';
    this.$live.appendChild(el('p', null, prefix + ': ' + text));
    while (this.$live.childNodes.length > 3) this.$live.removeChild(this.$live.firstChild);
  };

  // --- rendering: decorations and scroll position, once per frame --------------------------

  /** Call before changing the list: remembers what the reader is looking at
   * (`toBottom`: the reader's own action, show the newest). */
  W._beginMutation = function (toBottom) {
    if (this.snap) {
      if (toBottom) this.snap.stick = true;
    } else {
      var sc = this.$scroll, anchor = null, offset = 0;
      var top = sc.getBoundingClientRect().top;
      for (var n = this.$list.firstElementChild; n; n = n.nextElementSibling) {
        if (!this.recs.has(n)) continue; // separators move around; messages stay put
        var r = n.getBoundingClientRect();
        if (r.bottom > top) { anchor = n; offset = r.top - top; break; }
      }
      this.snap = { stick: !!toBottom || this._nearBottom(), anchor: anchor, offset: offset };
    }
    this._scheduleRender();
  };

  W._scheduleRender = function () {
    if (this.renderQueued || this.destroyed) return;
    this.renderQueued = true;
    var self = this, done = false;
    var run = function () { if (!done) { done = true; self._render(); } };
    requestAnimationFrame(run);
    setTimeout(run, 120); // hidden tabs get no animation frames
  };

  W._render = function () {
    this.renderQueued = false;
    var snap = this.snap;
    this.snap = null;
    this._decorate();
    var sc = this.$scroll;
    if (this.initialAnchor && this.$divider.parentNode) {
      this._scrollTo(this._offsetIn(this.$divider) - 12);
    } else if (this.initialAnchor || (snap && snap.stick)) {
      this._scrollTo(sc.scrollHeight);
    } else if (snap && snap.anchor && snap.anchor.isConnected) {
      var delta = snap.anchor.getBoundingClientRect().top - sc.getBoundingClientRect().top - snap.offset;
      this._scrollTo(sc.scrollTop + delta);
    }
    // More unread than the replay holds: fetch earlier pages (at most 10) until
    // the first unread is loaded, so the chat opens on the divider, not above it.
    if (this.initialAnchor && this.dividerAfter !== null && this.oldestSeq !== null &&
        this.oldestSeq > this.dividerAfter + 1 && this._canLoadMore() && !this.loadingMore && this.unreadPages < 10) {
      this.unreadPages++;
      this._loadMore();
    }
    if (this.anchorExpired && !this.awaitReplay && !this.loadingMore) this.initialAnchor = false;
    this.stick = this._nearBottom();
    this._renderTop();
    this._renderJump();
    this._renderOwnState();
    // An earlier page when the reader is at the top (or the list does not fill
    // the view), once the replay after `joined` has settled.
    if (!this.initialAnchor && this._canLoadMore() && sc.scrollTop < LOAD_MORE_PX) this._loadMore();
  };

  W._offsetIn = function (node) {
    return node.getBoundingClientRect().top - this.$scroll.getBoundingClientRect().top + this.$scroll.scrollTop;
  };

  /** Day separators, the "new messages" divider, and grouping of consecutive messages. */
  W._decorate = function () {
    var list = this.$list;
    this.daySeps.forEach(function (s) { if (s.parentNode) s.parentNode.removeChild(s); });
    if (this.$divider.parentNode) this.$divider.parentNode.removeChild(this.$divider);
    var prev = null, prevDay = null, dividerPlaced = false, used = new Map();
    for (var n = list.firstElementChild; n; n = n.nextElementSibling) {
      var rec = this.recs.get(n);
      if (!rec) continue;
      var day = dayKey(rec.ts);
      if (day !== prevDay) {
        var sep = this.daySeps.get(day) || el('div', 'chatd-day', null, { role: 'listitem' });
        sep.textContent = '';
        sep.appendChild(el('span', null, this.fmt.day(rec.ts)));
        this.daySeps.set(day, sep);
        used.set(day, sep);
        list.insertBefore(sep, n);
        prev = null;
      }
      if (!dividerPlaced && this.dividerAfter !== null && rec.seq !== null && rec.seq > this.dividerAfter && !rec.own) {
        list.insertBefore(this.$divider, n);
        dividerPlaced = true;
        prev = null;
      }
      var bubble = rec.kind === 'text' || rec.kind === 'note';
      var cont = !!(prev && bubble && prev.sender === rec.sender && prev.kind === rec.kind && rec.ts - prev.ts < GROUP_MS);
      n.classList.toggle('chatd-cont', cont);
      prev = bubble ? rec : null;
      prevDay = day;
    }
    this.daySeps = used;
  };

  W._renderTop = function () {
    var t = this.$top;
    t.textContent = '';
    if (this.loadingMore) {
      t.appendChild(el('span', 'chatd-spinner', null, { 'aria-hidden': 'true' }));
      t.appendChild(el('span', null, 'Loading earlier messages…'));
    } else if (this.everJoined && !this._canLoadMore()) {
      t.appendChild(el('span', null, this.msgs.size ? 'Beginning of the conversation' : 'No messages yet. Say hello!'));
    }
  };

  W._renderJump = function () {
    if (!this.$jump) return;
    var show = !this.stick && this.msgs.size > 0;
    this.$jump.hidden = !show;
    this.$jumpText.textContent = this.unread > 0 ? this.unread + ' new' : 'Latest';
    this.$jump.setAttribute('aria-label', this.unread > 0 ? 'Jump to ' + this.unread + ' new messages' : 'Jump to the latest message');
  };

  /** "Sent" / "Seen by Sam" under the newest own stored message. */
  W._renderOwnState = function () {
    var last = null, self = this;
    this.msgs.forEach(function (v, seq) {
      if (v.el.classList.contains('chatd-msg--own') && (!last || seq > last.seq)) last = { seq: seq, el: v.el, kind: v.m.kind };
    });
    if (this.$lastOwn && (!last || this.$lastOwn !== last.el)) {
      var old = this.$lastOwn.querySelector('.chatd-msg-foot');
      if (old) old.textContent = '';
    }
    if (!last) return;
    this.$lastOwn = last.el;
    var foot = last.el.querySelector('.chatd-msg-foot');
    if (!foot) return;
    var seen = [];
    this.receipts.forEach(function (seq, user) {
      var p = self.people.get(user);
      if (last.kind === 'note' && p && p.role === 'buyer') return; // a buyer's marker passes notes unseen
      if (seq >= last.seq) seen.push(firstName(self._nameOf(user)));
    });
    foot.textContent = '';
    foot.appendChild(icon(seen.length ? 'checks' : 'check'));
    foot.appendChild(el('span', null, seen.length ? 'Seen by ' + seen.join(', ') : 'Sent'));
  };

  W._renderPeople = function () {
    var self = this, ul = this.$people;
    ul.textContent = '';
    this.people.forEach(function (p) {
      if (self.me && p.id === self.me.id) return;
      var li = el('li', 'chatd-person' + (p.online ? ' chatd-person--online' : ''));
      var label = p.name + ', ' + roleLabel(p.role) + (p.online ? ', online' : ', offline');
      li.setAttribute('title', label);
      li.appendChild(el('span', 'chatd-avatar chatd-role-' + p.role, initials(p.name), { 'aria-hidden': 'true' }));
      li.appendChild(el('span', 'chatd-person-name', firstName(p.name), { 'aria-hidden': 'true' }));
      li.appendChild(el('span', 'chatd-sr', label));
      ul.appendChild(li);
    });
  };

  W._renderDispute = function () {
    var d = this.dispute, box = this.$dispute;
    box.textContent = '';
    box.hidden = !(d && d.open);
    if (box.hidden) return;
    box.appendChild(icon('alert', 'chatd-dispute-icon'));
    var text = el('div', 'chatd-dispute-text');
    var title = el('div', 'chatd-dispute-title');
    title.appendChild(el('strong', null, d.reason ? 'Dispute open: ' : 'Dispute open'));
    if (d.reason) {
      title.appendChild(el('span', 'chatd-sr', 'reason: '));
      title.appendChild(el('span', 'chatd-dispute-reason', d.reason));
    }
    text.appendChild(title);
    text.appendChild(el('div', 'chatd-dispute-meta',
      'Opened by ' + this._nameOf(d.by) + (d.ts ? ' · ' + this.fmt.short(d.ts) : '')));
    box.appendChild(text);
  };

  // --- scrolling, paging, reading ---------------------------------------------------------

  W._nearBottom = function () {
    var sc = this.$scroll;
    return sc.scrollHeight - sc.scrollTop - sc.clientHeight < NEAR_BOTTOM_PX;
  };

  W._scrollToBottom = function (smooth) {
    var sc = this.$scroll;
    var reduce = global.matchMedia && global.matchMedia('(prefers-reduced-motion: reduce)').matches;
    if (smooth && !reduce && sc.scrollTo) sc.scrollTo({ top: sc.scrollHeight, behavior: 'smooth' });
    else this._scrollTo(sc.scrollHeight);
    this.stick = true;
    this.initialAnchor = false;
    this._renderJump();
  };

  /** Scroll the list ourselves; the `scroll` event that follows is not the reader's. */
  W._scrollTo = function (top) {
    this.$scroll.scrollTop = top;
    this.lastTop = this.$scroll.scrollTop;
  };

  W._onScroll = function () {
    // Only the reader's own scrolling says whether they are at the bottom. Our
    // scrolls and layout changes (a banner appearing) also fire `scroll`, a
    // frame later, when the geometry may have changed meanwhile.
    var top = this.$scroll.scrollTop;
    if (top === this.lastTop) return;
    this.lastTop = top;
    this.stick = this._nearBottom();
    this._renderJump();
    if (!this.initialAnchor && this._canLoadMore() && this.$scroll.scrollTop < LOAD_MORE_PX) this._loadMore();
  };

  W._canLoadMore = function () {
    return !this.noMoreBefore && this.oldestSeq !== null && this.oldestSeq > 1;
  };

  W._loadMore = function () {
    if (this.loadingMore || !this.live) return;
    if (this._sendFrame({ type: 'history', order: this.order, before: this.oldestSeq, limit: this.pageSize })) {
      this.loadingMore = true;
      this._renderTop();
    }
  };

  W._onIntersect = function (entries) {
    for (var i = 0; i < entries.length; i++) {
      var e = entries[i], rec = this.recs.get(e.target);
      if (!rec || rec.seq === null) continue;
      var rootH = e.rootBounds ? e.rootBounds.height : global.innerHeight;
      var seen = e.isIntersecting && (e.intersectionRatio >= 0.5 || e.intersectionRect.height >= rootH * 0.4);
      if (seen) this.intersecting.add(rec.seq);
      else this.intersecting.delete(rec.seq);
    }
    this._maybeRead();
  };

  /** Move the read marker to the newest message actually on screen in a visible page. */
  W._maybeRead = function () {
    if (document.visibilityState !== 'visible' || !this.live) return;
    var max = 0;
    this.intersecting.forEach(function (s) { if (s > max) max = s; });
    if (max <= this.readSeq) return;
    this.pendingRead = Math.max(this.pendingRead || 0, max);
    if (this.timers.read) return; // one `read` per READ_DEBOUNCE_MS, with the newest seq
    this._timer('read', function () {
      var seq = this.pendingRead;
      this.pendingRead = 0;
      if (seq > this.readSeq && document.visibilityState === 'visible' &&
          this._sendFrame({ type: 'read', order: this.order, seq: seq })) {
        this.readSeq = seq;
      }
    }, READ_DEBOUNCE_MS);
  };

  // --- 4. public object ---------------------------------------------------------------------

  global.ChatdWidget = {
    version: '1',
    /** Mount a chat for one order into `element` (an Element or a CSS selector). */
    mount: function (element, options) {
      var node = typeof element === 'string' ? document.querySelector(element) : element;
      return new Widget(node, options || {});
    }
  };
})(window);
