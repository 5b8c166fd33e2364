// @ts-check
/*! chatd order-chat widget: the view. Plain JavaScript, no framework, no build step.
 *
 *   <script src="https://chat.example.com/widget.js"></script>
 *   <script>ChatdWidget.mount(element, {order: "o-42", token: jwt});</script>
 *
 * The protocol (connection, resume, outbox, dedup, unread) is session.js; this
 * file only draws what the session holds and turns the reader's actions into
 * session calls. chatd serves /widget.js as session.js + dom.js + this file,
 * so one script tag is enough; hosting the files yourself, include the three
 * in that order. See docs/widget.md.
 *
 * Layout of this file:
 *   1. constants
 *   2. the Widget class: construction, public API, session events, DOM,
 *      rendering, scrolling and reading, composer, attachments
 *   3. the public ChatdWidget object
 */
(function (global) {
  'use strict';

  /** @type {typeof import('./session.js')} */
  var Chatd = /** @type {any} */ (global).ChatdSession;
  /** @type {typeof import('./dom.js')} */
  var D = /** @type {any} */ (global).ChatdDom;
  if (!Chatd || !D) throw new Error('chatd widget: session.js and dom.js must be loaded before widget.js (chatd\'s /widget.js has all three)');

  /**
   * @typedef {InstanceType<typeof import('./session.js')['Session']>} Session
   * @typedef {import('./session.js').Message} Message
   * @typedef {import('./session.js').OutboxItem} OutboxItem
   * @typedef {import('./session.js').AttachmentRef} AttachmentRef
   * @typedef {import('./session.js').State} State
   * @typedef {import('./session.js').SessionEvents} SessionEvents
   *
   * @typedef {object} WidgetOptions
   * @property {string} order
   * @property {string | (() => string | Promise<string>)} token
   * @property {string} [url]
   * @property {string} [title]
   * @property {string} [locale]
   * @property {number} [pageSize]
   * @property {number} [maxLength]
   * @property {boolean | string} [css]
   * @property {boolean} [persist]
   *
   * What the list knows of each of its message elements.
   * @typedef {{ts: number, sender: string, kind: string, own: boolean, seq: number | null}} Rec
   * A file in the composer: uploading, then ready (with the server's ref) or failed.
   * @typedef {{name: string, size: number, state: 'uploading' | 'ready' | 'failed', ref: AttachmentRef | null, error: string | null}} Attached
   */

  // --- 1. constants -----------------------------------------------------------

  var currentScript = /** @type {HTMLScriptElement | null} */ (document.currentScript);
  var SCRIPT_SRC = (currentScript && currentScript.src) || '';

  var EVENT_KINDS = ['status', 'dispute', 'system'];
  var UNREACHABLE_AFTER = 3;      // failed connection attempts in a row before the widget says the server is unreachable
  var GROUP_MS = 5 * 60 * 1000;   // consecutive messages of one sender within this are grouped
  var NEAR_BOTTOM_PX = 64;
  var LOAD_MORE_PX = 160;
  var ANCHOR_MS = 800;            // the first screen stays on the divider while the replay arrives

  var el = D.el, icon = D.icon;
  var instances = 0;

  function defaultBaseUrl() {
    if (SCRIPT_SRC) {
      var u = new URL(SCRIPT_SRC);
      return u.origin + u.pathname.replace(/\/[^/]*$/, '');
    }
    return global.location.origin;
  }

  function pageVisible() {
    return document.visibilityState === 'visible';
  }

  // --- 2. the widget ----------------------------------------------------------

  class Widget {
    /** @param {Element | null} root @param {WidgetOptions} opts */
    constructor(root, opts) {
      if (!root || root.nodeType !== 1) throw new TypeError('ChatdWidget.mount: element required');
      if (!opts || !opts.order) throw new TypeError('ChatdWidget.mount: options.order required');
      if (!opts.token) throw new TypeError('ChatdWidget.mount: options.token required');
      this.host = root;
      this.opts = opts;
      this.order = String(opts.order);
      this.baseUrl = (opts.url || defaultBaseUrl()).replace(/\/+$/, '');
      this.wsUrl = Chatd.wsUrlOf(this.baseUrl, global.location.href);
      this.maxLength = opts.maxLength || 4000;
      this.fmt = D.makeFormatters(opts.locale);
      this.uid = 'chatd-' + (++instances);

      var self = this;
      /** @type {import('./session.js').StorageLike | null} */
      var storage = null;
      if (opts.persist !== false) {
        try { storage = global.localStorage; } catch (e) { storage = null; } // disabled: memory only
      }
      /** @type {Session} the protocol side: everything the widget knows about the chat is here */
      this.session = new Chatd.Session({
        url: this.wsUrl, order: this.order, token: opts.token, pageSize: opts.pageSize,
        maxLength: this.maxLength, storage: storage, canRead: pageVisible,
        seenSeq: function () { return self._seenNow(); }
      });
      /** @type {State} */
      this.state = 'connecting';
      this.destroyed = false;

      // composer
      this.noteMode = false;
      /** @type {Attached[]} files for the next message */
      this.attached = [];
      /** @type {Map<string, Promise<string | null>>} attachment id -> a data: URL (images, fetched with the token; data: and not blob: so the documented CSP `img-src 'self' data:` shows them) */
      this.thumbs = new Map();

      // view
      /** @type {WeakMap<Element, Rec>} */
      this.recs = new WeakMap();
      /** @type {Map<number, HTMLElement>} stored messages' elements, by seq */
      this.els = new Map();
      /** @type {Map<string, HTMLElement>} pending messages' elements, by client_id */
      this.pendingEls = new Map();
      /** @type {Map<string, HTMLElement>} */
      this.daySeps = new Map();
      /** @type {Set<number>} seqs on screen now */
      this.intersecting = new Set();
      /** @type {number | null} "new messages" divider before the first unread above this seq */
      this.dividerAfter = null;
      /** new messages came that the reader was not shown (a background tab, a resume): a reader at
       * the bottom is taken down to the divider, not past it */
      this.holdDivider = false;
      /** @type {{readSeq: number, divider: boolean} | null} the last join was a resume: its replay above readSeq is new */
      this.resume = null;
      /** @type {Message[]} new messages of a resume's replay, read out once as a summary */
      this.replayNew = [];
      this.unreadPages = 0;         // earlier pages fetched to reach the first unread on opening
      this.awaitReplay = false;
      this.anchorExpired = false;
      this.stick = true;
      this.initialAnchor = true;
      /** @type {{stick: boolean, anchor: Element | null, offset: number} | null} */
      this.snap = null;
      this.renderQueued = false;
      this.lastTop = 0;
      /** @type {HTMLElement | null} */
      this.$lastOwn = null;
      /** @type {Array<[EventTarget, string, EventListener]>} */
      this.listeners = [];
      /** @type {Array<() => void>} */
      this.unsubscribe = [];
      /** @type {Record<string, any>} */
      this.timers = {};
      /** @type {ResizeObserver | null} */
      this.ro = null;
      /** @type {IntersectionObserver | null} */
      this.io = null;
      /** @type {IntersectionObserver | null} */
      this.thumbIo = null;

      // The widget renders inside a Shadow DOM of its own, with its stylesheet
      // there: the host page's CSS (`header {color: #fff}`) cannot reach it.
      // `css: false` (the host styles it): in the page's DOM, as before.
      /** @type {Element | ShadowRoot} where the widget's elements go */
      this.mountPoint = root;
      /** @type {HTMLElement | null} */
      this.shadowHost = null;
      if (opts.css !== false) {
        var shadowHost = this.shadowHost = el('div', 'chatd-host');
        shadowHost.style.cssText = 'display:block;height:100%;min-height:0';
        root.appendChild(shadowHost);
        var shadow = shadowHost.attachShadow({ mode: 'open' });
        var href = new URL(typeof opts.css === 'string' ? opts.css : this.baseUrl + '/widget.css', global.location.href).href;
        shadow.appendChild(el('link', null, null, { rel: 'stylesheet', href: href }));
        this.mountPoint = shadow;
      }
      /** @type {Map<string, string>} status -> its workflow tone, as the order frames tell them */
      this.tones = new Map();
      /** @type {Map<string, string>} status -> its workflow label, likewise */
      this.labels = new Map();
      var dom = this._build();
      this.root = dom.root;
      this.$ = dom;
      this._bindSession();
      this._bindGlobal();
      this.session.start();
    }

    // --- public API -----------------------------------------------------------

    /**
     * Send a message (as the composer does). Returns its client_id.
     * @param {string} text
     * @param {{note?: boolean, attachments?: AttachmentRef[]}} [options]
     */
    send(text, options) {
      var t = String(text == null ? '' : text).trim();
      var atts = (options && options.attachments) || [];
      if ((!t && !atts.length) || t.length > this.maxLength || this.session.fatal) return null;
      this.dividerAfter = null;
      this.initialAnchor = false;
      this._beginMutation(true);
      return this.session.send(t, options);
    }

    /** Change the order status (supplier, staff, bot). @param {string} status @param {string} [text] */
    setStatus(status, text) { return this.session.setStatus(status, text); }

    /** Open (buyer, staff) or close (staff, opener) the order's dispute. @param {string} [reason] */
    openDispute(reason) { return this.session.openDispute(reason); }
    /** @param {string} [reason] */
    closeDispute(reason) { return this.session.closeDispute(reason); }

    /**
     * Listen to a widget event ('ready', 'state', 'message', 'unread', 'order', 'error').
     * @param {string} name @param {(detail: any) => void} fn
     */
    on(name, fn) {
      var type = 'chatd:' + name;
      /** @param {Event} ev */
      var wrapped = function (ev) { fn(/** @type {CustomEvent} */ (ev).detail); };
      var host = this.host;
      host.addEventListener(type, wrapped);
      return function () { host.removeEventListener(type, wrapped); };
    }

    focus() { this.$.input.focus(); }

    destroy() {
      if (this.destroyed) return;
      this.destroyed = true;
      this.session.destroy();
      this.unsubscribe.forEach(function (u) { u(); });
      for (var k in this.timers) clearTimeout(this.timers[k]);
      this.listeners.forEach(function (l) { l[0].removeEventListener(l[1], l[2]); });
      if (this.io) this.io.disconnect();
      if (this.thumbIo) this.thumbIo.disconnect();
      if (this.ro) this.ro.disconnect();
      if (this.root.parentNode) this.root.parentNode.removeChild(this.root);
      if (this.shadowHost && this.shadowHost.parentNode) this.shadowHost.parentNode.removeChild(this.shadowHost);
    }

    /** Say the buyer's newest message needs no reply (supplier side), ending the wait. */
    noReplyNeeded() {
      var seq = this.session.noReplySeq();
      return seq === null ? false : this.session.noReplyNeeded(seq);
    }

    /**
     * A public event: a bubbling `chatd:<name>` on the host element, and the `on<Name>` option.
     * @param {string} name @param {any} detail
     */
    _emit(name, detail) {
      this.host.dispatchEvent(new CustomEvent('chatd:' + name, { detail: detail, bubbles: true }));
      var cb = /** @type {any} */ (this.opts)['on' + name.charAt(0).toUpperCase() + name.slice(1)];
      if (typeof cb === 'function') {
        try { cb(detail); } catch (e) { setTimeout(function () { throw e; }); }
      }
    }

    /** @param {string} name @param {(this: Widget) => void} fn @param {number} ms */
    _timer(name, fn, ms) {
      clearTimeout(this.timers[name]);
      var self = this;
      this.timers[name] = setTimeout(function () { delete self.timers[name]; fn.call(self); }, ms);
    }

    /**
     * @param {EventTarget} target @param {string} type @param {(ev: any) => void} fn
     * @param {AddEventListenerOptions} [options]
     */
    _listen(target, type, fn, options) {
      target.addEventListener(type, fn, options);
      this.listeners.push([target, type, fn]);
    }

    // --- what the session says ------------------------------------------------

    _bindSession() {
      var self = this, s = this.session;
      /**
       * @template {keyof SessionEvents} K
       * @param {K} name @param {(detail: SessionEvents[K]) => void} fn
       */
      var on = function (name, fn) { self.unsubscribe.push(s.on(name, fn)); };
      on('state', function (d) { self._setState(d.state); });
      on('ready', function (d) { self._emit('ready', { user: d.user }); });
      on('joined', function (d) { self._onJoined(d); });
      on('reset', function () { self._dropConfirmed(); });
      on('remove', function (d) { self._removeMessages(d.seqs); });
      on('insert', function (d) { self._onInsert(d); });
      on('message', function (d) { self._emit('message', { message: d.message, own: d.own, live: d.live }); });
      on('outbox', function (d) {
        if (d.added) { self._beginMutation(); self._renderPending(d.item); } else self._renderPendingState(d.item);
      });
      on('settled', function (d) { self._onSettled(d.item); });
      on('paging', function (d) { if (d.loading) self._renderTop(); else self._beginMutation(); });
      on('people', function () { self._renderPeople(); });
      on('order', function (d) {
        self._renderOrder();
        if (d.changed) self._emit('order', { status: d.status, dispute: d.dispute });
      });
      on('reply', function () { self._renderActions(); });
      on('unread', function (d) { self._renderUnread(); self._emit('unread', { count: d.count, total: d.total }); });
      on('receipt', function () { self._scheduleRender(); });
      on('typing', function (d) { self._renderTyping(d.names); });
      on('error', function (d) {
        if (d.fatal) self._showClosed(d.message);
        else if (d.action) self._showNotice(d.action, d.message);
        self._emit('error', d);
      });
    }

    /** @param {State} state */
    _setState(state) {
      var $ = this.$;
      this.state = state;
      this.root.setAttribute('data-state', state);
      // after a few failed attempts in a row, say so: the server cannot be reached (it keeps trying)
      var lost = (state === 'connecting' || state === 'reconnecting') && this.session.attempt >= UNREACHABLE_AFTER;
      var show = state === 'reconnecting' || lost;
      $.conn.hidden = !show;
      $.conn.textContent = '';
      if (show) {
        $.conn.appendChild(el('span', 'chatd-conn-dot', null, { 'aria-hidden': 'true' }));
        $.conn.appendChild(document.createTextNode(lost ? 'Cannot reach the chat server. Retrying…' : 'Reconnecting…'));
      }
      this.root.toggleAttribute('data-unreachable', lost);
      if (state === 'connecting') $.empty.textContent = lost ? 'The chat server cannot be reached right now.' : 'Connecting…';
      this._updatePendingStates();
      this._emit('state', { state: state });
    }

    /** @param {SessionEvents['joined']} d */
    _onJoined(d) {
      var $ = this.$;
      this._beginMutation();
      if (d.first && d.unread > 0) this.dividerAfter = d.readSeq;
      // A resume replays what came while the connection was down; above the server's
      // marker, that is new as if it had come live (a divider unless unread ones are held).
      this.resume = d.first ? null : { readSeq: d.readSeq, divider: !this._unreadHeld(d.readSeq) };
      if (d.first) {
        // Kept while the replay arrives; ends after the first render past this.
        this.awaitReplay = d.lastSeq > 0;
        this._timer('anchor', function () { this.anchorExpired = true; this._scheduleRender(); }, ANCHOR_MS);
      }
      $.empty.hidden = true;
      if (this.session.mayWriteNotes()) {
        if (!$.note.parentNode && $.hint.parentNode) $.hint.parentNode.insertBefore($.note, $.hint);
      } else if ($.note.parentNode) {
        $.note.parentNode.removeChild($.note);
        this._setNoteMode(false);
      }
      // what is on screen now is read once more: a `read` sent just before the
      // connection dropped may never have reached the server
      this._maybeRead();
    }

    /** @param {SessionEvents['insert']} d */
    _onInsert(d) {
      var m = d.message;
      if (d.source === 'ack') { // held as stored before its own `message` frame
        this._beginMutation();
        this._insertMessage(m, d.own, d.older);
        return;
      }
      this._beginMutation(d.own && d.live); // one's own doing (also from another tab): show it
      if (d.live && !d.own) {
        if (this.session.unread === 0 && (!pageVisible() || !(this.snap && this.snap.stick))) this.dividerAfter = m.seq - 1;
        if (!pageVisible() && this.dividerAfter !== null) this.holdDivider = true;
        this._announce(m);
      } else if (!d.own && d.source === 'live' && this.resume && m.seq > this.resume.readSeq) {
        if (this.resume.divider || this.dividerAfter === null) this.dividerAfter = this.resume.readSeq;
        this.resume.divider = false;
        this.holdDivider = true;
        this.replayNew.push(m);
        this._timer('announce', this._announceReplay, 250); // once the replay has come
      }
      this._insertMessage(m, d.own, d.older);
      this.awaitReplay = false;
    }

    /** Whether a message from others above `readSeq` is in the list. @param {number} readSeq */
    _unreadHeld(readSeq) {
      for (var [seq, node] of this.els) {
        var rec = this.recs.get(node);
        if (seq > readSeq && rec && !rec.own) return true;
      }
      return false;
    }

    /** The server has the message (or the user gave it up): its pending bubble goes. @param {OutboxItem} item */
    _onSettled(item) {
      this._beginMutation();
      var node = this.pendingEls.get(item.client_id);
      this.pendingEls.delete(item.client_id);
      if (node && node.parentNode) node.parentNode.removeChild(node);
    }

    /** @param {string} text */
    _showClosed(text) {
      var $ = this.$;
      this.root.classList.add('chatd--fatal');
      $.closed.textContent = '';
      $.closed.appendChild(icon('alert', 'chatd-closed-icon'));
      $.closed.appendChild(el('span', null, text));
      $.closed.hidden = false;
      $.actions.hidden = true;
      $.closedNote.hidden = true;
      $.form.hidden = true;
      $.typing.hidden = true;
      $.empty.hidden = true;
    }

    // --- building the DOM -----------------------------------------------------

    _build() {
      var self = this, id = this.uid;
      var root = el('section', 'chatd', null, { 'aria-label': this.opts.title || 'Order chat', 'data-state': 'connecting' });

      // header: title, unread badge, connection state, status chip, participants
      var head = el('header', 'chatd-head');
      var titleRow = el('div', 'chatd-title-row');
      var title = el('h2', 'chatd-title', this.opts.title || 'Order chat');
      title.appendChild(el('span', 'chatd-order-ref', this.order));
      var badge = el('span', 'chatd-badge', null, { hidden: '' });
      var conn = el('span', 'chatd-conn', null, { role: 'status', hidden: '' });
      titleRow.appendChild(title);
      titleRow.appendChild(badge);
      titleRow.appendChild(conn);
      var meta = el('div', 'chatd-meta');
      var status = el('span', 'chatd-status', null, { hidden: '' });
      var people = el('ul', 'chatd-people', null, { 'aria-label': 'Participants' });
      meta.appendChild(status);
      meta.appendChild(people);
      head.appendChild(titleRow);
      head.appendChild(meta);

      // the order's controls, each shown only to the roles that may use it (see _renderActions)
      var actions = el('div', 'chatd-actions', null, { role: 'group', 'aria-label': 'Order actions', hidden: '' });
      var statusWrap = el('div', 'chatd-menu-wrap');
      var statusBtn = el('button', 'chatd-action', null, {
        type: 'button', 'aria-haspopup': 'true', 'aria-expanded': 'false', 'aria-controls': id + '-statuses'
      });
      statusBtn.appendChild(icon('box'));
      statusBtn.appendChild(el('span', null, 'Update status'));
      var statusMenu = el('ul', 'chatd-menu', null, { id: id + '-statuses', 'aria-label': 'Next statuses', hidden: '' });
      statusWrap.appendChild(statusBtn);
      statusWrap.appendChild(statusMenu);
      var receiptBtn = el('button', 'chatd-action chatd-action--primary', null, { type: 'button' });
      receiptBtn.appendChild(icon('check'));
      receiptBtn.appendChild(el('span', null, 'Confirm receipt'));
      var noReplyBtn = el('button', 'chatd-action', null, {
        type: 'button', title: 'The buyer’s newest message asks nothing: stop the reply clock'
      });
      noReplyBtn.appendChild(icon('checks'));
      noReplyBtn.appendChild(el('span', null, 'No reply needed'));
      var openDisputeBtn = el('button', 'chatd-action chatd-action--danger', null, { type: 'button' });
      openDisputeBtn.appendChild(icon('alert'));
      openDisputeBtn.appendChild(el('span', null, 'Open dispute'));
      var closeDisputeBtn = el('button', 'chatd-action', null, { type: 'button' });
      closeDisputeBtn.appendChild(icon('check'));
      closeDisputeBtn.appendChild(el('span', null, 'Close dispute'));
      var helpBtn = el('button', 'chatd-action', null, { type: 'button' });
      helpBtn.appendChild(icon('info'));
      helpBtn.appendChild(el('span', null, 'Ask support'));
      [statusWrap, receiptBtn, noReplyBtn, openDisputeBtn, closeDisputeBtn, helpBtn].forEach(function (n) { actions.appendChild(n); });

      // a refused action, said plainly until dismissed
      var notice = el('div', 'chatd-notice', null, { role: 'alert', hidden: '' });
      var noticeText = el('span', 'chatd-notice-text');
      var noticeClose = el('button', 'chatd-link-btn', 'Dismiss', { type: 'button' });
      notice.appendChild(icon('alert'));
      notice.appendChild(noticeText);
      notice.appendChild(noticeClose);

      // open-dispute banner
      var dispute = el('div', 'chatd-dispute', null, { role: 'status', hidden: '' });

      // message list
      var body = el('div', 'chatd-body');
      var scroll = el('div', 'chatd-scroll', null, { tabindex: '0', role: 'region', 'aria-label': 'Messages' });
      var top = el('div', 'chatd-top');
      var list = el('div', 'chatd-list', null, { role: 'list' });
      var empty = el('div', 'chatd-empty', 'Connecting…');
      scroll.appendChild(top);
      scroll.appendChild(list);
      scroll.appendChild(empty);
      var jump = el('button', 'chatd-jump', null, { type: 'button', hidden: '' });
      jump.appendChild(icon('down'));
      var jumpText = el('span', null, 'Latest');
      jump.appendChild(jumpText);
      body.appendChild(scroll);
      body.appendChild(jump);
      var divider = el('div', 'chatd-divider', null, { role: 'listitem' });
      divider.appendChild(el('span', null, 'New messages'));

      // typing line
      var typing = el('div', 'chatd-typing', null, { hidden: '' });
      var typingText = el('span');
      var dots = el('span', 'chatd-dots', null, { 'aria-hidden': 'true' });
      dots.appendChild(el('i')); dots.appendChild(el('i')); dots.appendChild(el('i'));
      typing.appendChild(dots);
      typing.appendChild(typingText);

      // composer
      var form = el('form', 'chatd-composer', null, { novalidate: '' });
      var row = el('div', 'chatd-compose-row');
      var label = el('label', 'chatd-sr', 'Message', { for: id + '-input' });
      var input = el('textarea', 'chatd-input', null, {
        id: id + '-input', rows: '1', placeholder: 'Write a message…', 'aria-describedby': id + '-hint',
        enterkeyhint: 'send', autocomplete: 'off'
      });
      var send = el('button', 'chatd-send', null, { type: 'submit', 'aria-label': 'Send', disabled: '' });
      send.appendChild(icon('send'));
      send.appendChild(el('span', 'chatd-send-label', 'Send'));
      var attach = el('button', 'chatd-attach', null, { type: 'button', 'aria-label': 'Attach files', title: 'Attach files' });
      attach.appendChild(icon('clip'));
      var file = el('input', 'chatd-sr', null, { type: 'file', multiple: '', tabindex: '-1', 'aria-hidden': 'true' });
      var chips = el('ul', 'chatd-chips', null, { 'aria-label': 'Files to send', hidden: '' });
      row.appendChild(label);
      row.appendChild(attach);
      row.appendChild(file);
      row.appendChild(input);
      row.appendChild(send);
      var foot = el('div', 'chatd-compose-foot');
      // appended only for roles that may write notes (see _onJoined)
      var note = el('button', 'chatd-note-toggle', null, {
        type: 'button', 'aria-pressed': 'false',
        title: 'Internal notes are seen by the supplier, sales rep and staff, never by the buyer'
      });
      note.appendChild(icon('lock'));
      note.appendChild(el('span', null, 'Internal note'));
      var hint = el('span', 'chatd-hint', 'Enter to send · Shift+Enter for a new line', { id: id + '-hint' });
      var count = el('span', 'chatd-count', null, { 'aria-live': 'polite' });
      foot.appendChild(hint);
      foot.appendChild(count);
      form.appendChild(chips);
      form.appendChild(row);
      form.appendChild(foot);

      var closed = el('div', 'chatd-closed', null, { role: 'alert', hidden: '' });
      // a chat closed by its workflow: readable, no field to type in
      var closedNote = el('div', 'chatd-closed-note', null, { role: 'status', hidden: '' });
      var live = el('div', 'chatd-sr', null, { 'aria-live': 'polite', 'aria-atomic': 'false' });

      // the confirmation and reason dialog of the actions
      var dialog = /** @type {HTMLDialogElement} */ (el('dialog', 'chatd-dialog', null, { 'aria-labelledby': id + '-dlg-title' }));
      var dform = el('form', 'chatd-dialog-form', null, { method: 'dialog' });
      var dtitle = el('h3', 'chatd-dialog-title', null, { id: id + '-dlg-title' });
      var dtext = el('p', 'chatd-dialog-text');
      var dlabel = el('label', 'chatd-dialog-label', 'Reason', { for: id + '-reason' });
      var dreason = /** @type {HTMLTextAreaElement} */ (el('textarea', 'chatd-input chatd-dialog-reason', null, { id: id + '-reason', rows: '3', maxlength: String(this.maxLength) }));
      var dbuttons = el('div', 'chatd-dialog-buttons');
      var dcancel = el('button', 'chatd-action', 'Cancel', { type: 'submit', value: 'cancel' });
      var dok = el('button', 'chatd-action chatd-action--primary', 'OK', { type: 'submit', value: 'ok' });
      dbuttons.appendChild(dcancel);
      dbuttons.appendChild(dok);
      [dtitle, dtext, dlabel, dreason, dbuttons].forEach(function (n) { dform.appendChild(n); });
      dialog.appendChild(dform);

      [head, actions, notice, dispute, body, typing, form, closedNote, closed, live, dialog].forEach(function (n) { root.appendChild(n); });
      this.mountPoint.appendChild(root);

      this._listen(statusBtn, 'click', function () { self._toggleMenu(statusMenu.hidden); });
      this._listen(root, 'keydown', function (/** @type {KeyboardEvent} */ e) {
        if (e.key === 'Escape' && !statusMenu.hidden) { self._toggleMenu(false); statusBtn.focus(); }
      });
      this._listen(receiptBtn, 'click', function () { self._confirmReceipt(); });
      this._listen(noReplyBtn, 'click', function () {
        if (!self.noReplyNeeded()) self._showNotice('no_reply', 'Not connected: try again in a moment.');
      });
      this._listen(openDisputeBtn, 'click', function () { self._askOpenDispute(); });
      this._listen(closeDisputeBtn, 'click', function () { self._askCloseDispute(); });
      this._listen(helpBtn, 'click', function () { self._askHelp(); });
      this._listen(noticeClose, 'click', function () { notice.hidden = true; });

      // behaviour
      this._listen(form, 'submit', function (e) { e.preventDefault(); self._submit(); });
      this._listen(input, 'keydown', function (/** @type {KeyboardEvent} */ e) {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
          e.preventDefault();
          self._submit();
        }
      });
      this._listen(input, 'input', function () { self._onInput(); });
      this._listen(input, 'blur', function () { self.session.stopTyping(); });
      this._listen(note, 'click', function () { self._setNoteMode(!self.noteMode); });
      this._listen(attach, 'click', function () { file.click(); });
      this._listen(file, 'change', function () {
        Array.prototype.forEach.call(file.files || [], function (/** @type {File} */ f) { self._attach(f); });
        file.value = '';
      });
      this._listen(jump, 'click', function () { self._scrollToBottom(true); input.focus({ preventScroll: true }); });
      this._listen(scroll, 'scroll', function () { self._onScroll(); }, { passive: true });
      // The first screen is kept on the "new messages" divider while the replay
      // arrives, until the reader does anything.
      ['wheel', 'touchstart', 'keydown', 'pointerdown'].forEach(function (t) {
        self._listen(root, t, function () { self.initialAnchor = false; }, { passive: true });
      });

      // The banner, the typing line or the host page can shrink the list: a
      // reader at the newest message stays there.
      if (typeof ResizeObserver === 'function') {
        this.ro = new ResizeObserver(function () {
          if (self.stick) self._stickDown();
        });
        this.ro.observe(scroll);
      }
      if (typeof IntersectionObserver === 'function') {
        // image previews load when they come near the view, not for all of history at once
        var thumbIo = this.thumbIo = new IntersectionObserver(function (entries) {
          entries.forEach(function (e) {
            if (!e.isIntersecting) return;
            thumbIo.unobserve(e.target);
            self._loadThumb(/** @type {HTMLImageElement} */ (e.target));
          });
        }, { root: scroll, rootMargin: '300px 0px' });
        this.io = new IntersectionObserver(function (entries) { self._onIntersect(entries); }, { threshold: [0, 0.5, 1] });
      }
      return {
        root: root, badge: badge, conn: conn, status: status, people: people, dispute: dispute, scroll: scroll,
        top: top, list: list, empty: empty, jump: jump, jumpText: jumpText, divider: divider, typing: typing,
        typingText: typingText, form: form, input: input, send: send, chips: chips, note: note, hint: hint,
        count: count, closed: closed, live: live, actions: actions, statusWrap: statusWrap, statusBtn: statusBtn,
        statusMenu: statusMenu, receiptBtn: receiptBtn, noReplyBtn: noReplyBtn, helpBtn: helpBtn, openDisputeBtn: openDisputeBtn,
        closeDisputeBtn: closeDisputeBtn, notice: notice, noticeText: noticeText, closedNote: closedNote,
        dialog: dialog, dtitle: dtitle, dtext: dtext, dlabel: dlabel, dreason: dreason, dok: dok
      };
    }

    _bindGlobal() {
      var self = this;
      this._listen(document, 'visibilitychange', function () {
        if (pageVisible()) {
          self._maybeRead();
          self.session.wake();
        }
      });
      this._listen(global, 'online', function () { self.session.reconnectNow(); });
    }

    // --- order state, people, unread --------------------------------------------

    /** The label to show for a status: the workflow's, else the status made readable. @param {string} status */
    _statusLabel(status) {
      var s = this.session;
      if (status === s.status && s.statusLabel && s.statusLabel !== status) return s.statusLabel;
      var known = this.labels.get(status);
      return known && known !== status ? known : D.humanize(status);
    }

    _renderOrder() {
      var $ = this.$, s = this.session, status = s.status;
      var tones = this.tones, labels = this.labels;
      s.statuses.concat(s.nextStatuses).forEach(function (n) { tones.set(n.status, n.tone); labels.set(n.status, n.label); });
      if (status) { tones.set(status, s.statusTone); labels.set(status, s.statusLabel || status); }
      $.status.hidden = !status;
      $.status.textContent = '';
      if (status) {
        $.status.appendChild(el('span', 'chatd-sr', 'Order status: '));
        $.status.appendChild(document.createTextNode(this._statusLabel(status)));
        $.status.setAttribute('data-status', String(status).toLowerCase());
        $.status.setAttribute('data-tone', s.statusTone);
      }
      // status cards take their colour from the workflow's tones
      var self = this;
      $.list.querySelectorAll('.chatd-event--status[data-status]').forEach(function (n) {
        var st = n.getAttribute('data-status') || '', t = tones.get(st), chip = n.querySelector('.chatd-event-status');
        if (t) n.setAttribute('data-tone', t);
        if (chip) chip.textContent = self._statusLabel(st);
      });
      this._renderDispute();
      this._renderClosed();
      this._renderActions();
    }

    /** A chat its workflow closed: it says why, and there is no field to type in (staff and bots still post). */
    _renderClosed() {
      var $ = this.$, s = this.session;
      if (s.fatal) return;
      var shut = !s.mayPost();
      $.form.hidden = shut;
      $.closedNote.hidden = !shut;
      $.closedNote.textContent = '';
      if (shut) {
        $.closedNote.appendChild(icon('lock', 'chatd-closed-icon'));
        var why = s.closedReason ? this._statusLabel(s.closedReason) : null;
        $.closedNote.appendChild(el('span', null, 'This chat is closed' + (why ? ': the order is ' + why : '') +
          '. You can still read the conversation.'));
        s.stopTyping();
      }
    }

    /** Only the controls this user's role may use now. */
    _renderActions() {
      var $ = this.$, s = this.session, self = this;
      if (s.fatal || !s.everJoined) { $.actions.hidden = true; return; }
      var receipt = s.mayConfirmReceipt();
      var next = s.nextStatuses.filter(function (n) { return !(receipt && n.status === 'delivered'); });
      $.statusWrap.hidden = !next.length || !s.mayPost();
      $.statusMenu.textContent = '';
      next.forEach(function (n) {
        var li = el('li');
        var b = el('button', 'chatd-menu-item', null, { type: 'button', 'data-status': n.status, 'data-tone': n.tone });
        b.appendChild(el('span', 'chatd-tone-dot', null, { 'aria-hidden': 'true' }));
        b.appendChild(el('span', null, n.label));
        b.addEventListener('click', function () {
          self._toggleMenu(false);
          // the optional text replaces the status message's default text (a tracking number, a reason)
          self._ask({
            title: 'Update status', text: 'Move this order to “' + n.label + '”? Everyone in the chat sees it.', confirm: n.label,
            reason: true, label: 'Message to the buyer (optional)', placeholder: 'Tracking number, reason…'
          }).then(function (text) { if (text !== null) self.setStatus(n.status, text || undefined); });
        });
        li.appendChild(b);
        $.statusMenu.appendChild(li);
      });
      if (!next.length) this._toggleMenu(false);
      $.receiptBtn.hidden = !receipt || !s.mayPost();
      $.noReplyBtn.hidden = !s.mayMarkNoReply();
      $.openDisputeBtn.hidden = !s.mayOpenDispute();
      $.closeDisputeBtn.hidden = !s.mayCloseDispute();
      $.helpBtn.hidden = !s.mayAskHelp();
      var any = [$.statusWrap, $.receiptBtn, $.noReplyBtn, $.openDisputeBtn, $.closeDisputeBtn, $.helpBtn].some(function (n) { return !n.hidden; });
      $.actions.hidden = !any;
    }

    /** @param {boolean} open */
    _toggleMenu(open) {
      var $ = this.$;
      $.statusMenu.hidden = !open;
      $.statusBtn.setAttribute('aria-expanded', String(!!open));
      if (open) {
        var first = /** @type {HTMLElement | null} */ ($.statusMenu.querySelector('button'));
        if (first) first.focus();
      }
    }

    _confirmReceipt() {
      var self = this;
      this._ask({ title: 'Confirm receipt', text: 'Confirm that the order arrived? The supplier is told at once.', confirm: 'Confirm receipt' })
        .then(function (ok) { if (ok !== null) self.setStatus('delivered', 'Receipt confirmed'); });
    }

    _askOpenDispute() {
      var self = this;
      this._ask({
        title: 'Open a dispute', text: 'Say what went wrong. Staff and the supplier see the dispute at once.',
        reason: true, required: true, confirm: 'Open dispute'
      }).then(function (reason) { if (reason) self.openDispute(reason); });
    }

    _askHelp() {
      var self = this;
      var who = this.session.role === 'buyer' ? 'Everyone on this order sees that you asked.' : 'The buyer does not see it.';
      this._ask({
        title: 'Ask support', text: 'Platform staff will step into this chat. ' + who + ' What do you need (optional)?',
        reason: true, confirm: 'Ask support'
      }).then(function (text) { if (text !== null) self.session.askHelp(text || undefined); });
    }

    _askCloseDispute() {
      var self = this;
      this._ask({
        title: 'Close the dispute', text: 'Close this dispute? Add how it was settled (optional).',
        reason: true, confirm: 'Close dispute'
      }).then(function (reason) { if (reason !== null) self.closeDispute(reason || undefined); });
    }

    /**
     * The dialog: resolves to the reason ('' without one) on confirm, null on cancel.
     * `label`, `placeholder`: the text field's, instead of a reason's.
     * @param {{title: string, text: string, confirm: string, reason?: boolean, required?: boolean, label?: string, placeholder?: string}} o
     * @returns {Promise<string | null>}
     */
    _ask(o) {
      var $ = this.$, dlg = $.dialog;
      $.dtitle.textContent = o.title;
      $.dtext.textContent = o.text;
      $.dlabel.hidden = $.dreason.hidden = !o.reason;
      $.dlabel.textContent = o.label || (o.required ? 'Reason' : 'Reason (optional)');
      $.dreason.placeholder = o.placeholder || '';
      $.dreason.value = '';
      // checked on confirm (below), not by the form: Cancel must close the dialog with the field empty
      if (o.required) $.dreason.setAttribute('aria-required', 'true'); else $.dreason.removeAttribute('aria-required');
      $.dok.textContent = o.confirm;
      return new Promise(function (resolve) {
        /** @param {Event} e */
        var onSubmit = function (e) {
          var sub = /** @type {SubmitEvent} */ (e).submitter;
          if (sub && /** @type {HTMLButtonElement} */ (sub).value === 'ok' && o.required && !$.dreason.value.trim()) {
            e.preventDefault();
            $.dreason.focus();
          }
        };
        var onClose = function () {
          dlg.removeEventListener('close', onClose);
          /** @type {HTMLFormElement} */ (dlg.firstElementChild).removeEventListener('submit', onSubmit);
          resolve(dlg.returnValue === 'ok' ? $.dreason.value.trim() : null);
        };
        dlg.returnValue = '';
        dlg.addEventListener('close', onClose);
        /** @type {HTMLFormElement} */ (dlg.firstElementChild).addEventListener('submit', onSubmit);
        dlg.showModal();
        if (o.reason) $.dreason.focus();
      });
    }

    /** A refused action, shown until dismissed. @param {string} action @param {string} message */
    _showNotice(action, message) {
      /** @type {Record<string, string>} */
      var what = {
        set_status: 'The status was not changed', dispute_open: 'The dispute was not opened',
        dispute_close: 'The dispute was not closed', no_reply: '“No reply needed” was not saved',
        help: 'Support was not asked', note: 'An internal note was not sent'
      };
      this.$.noticeText.textContent = (what[action] || 'That did not work') + ': ' + (message || 'refused by the server') + '.';
      this.$.notice.hidden = false;
    }

    _renderUnread() {
      var badge = this.$.badge, n = this.session.unread;
      badge.hidden = n === 0;
      badge.textContent = n > 99 ? '99+' : String(n);
      badge.setAttribute('aria-label', badge.textContent + ' unread message' + (n === 1 ? '' : 's'));
      badge.title = badge.getAttribute('aria-label') || '';
      this._renderJump();
    }

    _renderPeople() {
      var s = this.session, ul = this.$.people;
      ul.textContent = '';
      s.people.forEach(function (p) {
        if (s.me && p.id === s.me.id) return;
        var li = el('li', 'chatd-person' + (p.online ? ' chatd-person--online' : ''));
        var label = p.name + ', ' + D.roleLabel(p.role) + (p.online ? ', online' : ', offline');
        li.setAttribute('title', label);
        li.appendChild(D.avatar(p, p.role));
        li.appendChild(el('span', 'chatd-person-name', D.firstName(p.name), { 'aria-hidden': 'true' }));
        li.appendChild(el('span', 'chatd-sr', label));
        ul.appendChild(li);
      });
    }

    _renderDispute() {
      this._renderActions();
      var d = this.session.dispute, box = this.$.dispute;
      box.textContent = '';
      box.hidden = !(d && d.open);
      if (!d || box.hidden) return;
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
        'Opened by ' + (d.by_name || this.session.nameOf(d.by)) + (d.ts ? ' · ' + this.fmt.short(d.ts) : '')));
      box.appendChild(text);
    }

    /** @param {string[]} names everyone else typing now */
    _renderTyping(names) {
      var first = names.map(D.firstName), $ = this.$;
      $.typing.hidden = first.length === 0;
      $.typingText.textContent = first.length === 0 ? '' :
        first.length === 1 ? first[0] + ' is typing…' :
        first.length === 2 ? first[0] + ' and ' + first[1] + ' are typing…' : 'Several people are typing…';
    }

    // --- messages in the list -----------------------------------------------------

    /** @param {Message} m @param {boolean} own @param {boolean} older it goes above everything held */
    _insertMessage(m, own, older) {
      var node = this._messageEl(m, own);
      this.recs.set(node, { ts: m.ts, sender: m.sender ? m.sender.id : '', kind: m.kind, own: own, seq: m.seq });
      this.els.set(m.seq, node);
      // Position by seq: before the first later message, or before the pending ones.
      var list = this.$.list, ref = null, n;
      if (older) {
        for (n = list.firstElementChild; n; n = n.nextElementSibling) if (n.hasAttribute('data-seq') || n.hasAttribute('data-cid')) { ref = n; break; }
      } else {
        for (n = list.lastElementChild; n; n = n.previousElementSibling) {
          if (n.hasAttribute('data-cid')) { ref = n; continue; }
          if (!n.hasAttribute('data-seq')) continue;
          if (+(n.getAttribute('data-seq') || 0) < m.seq) break;
          ref = n;
        }
      }
      list.insertBefore(node, ref);
      if (!own && this.io) this.io.observe(node);
    }

    /** Forget every stored message (after a truncated resume); pending ones stay. */
    _dropConfirmed() {
      var self = this;
      this._beginMutation();
      this.els.forEach(function (node) {
        if (self.io) self.io.unobserve(node);
        if (node.parentNode) node.parentNode.removeChild(node);
      });
      this.els.clear();
      this.intersecting.clear();
    }

    /** Take stored messages out of the list (notes, once the role no longer sees them). @param {number[]} seqs */
    _removeMessages(seqs) {
      var self = this;
      this._beginMutation();
      seqs.forEach(function (seq) {
        var node = self.els.get(seq);
        self.els.delete(seq);
        self.intersecting.delete(seq);
        if (!node) return;
        if (self.io) self.io.unobserve(node);
        if (node === self.$lastOwn) self.$lastOwn = null;
        if (node.parentNode) node.parentNode.removeChild(node);
      });
    }

    /** @param {Message} m @param {boolean} own */
    _messageEl(m, own) {
      var kind = m.kind || 'text';
      if (EVENT_KINDS.indexOf(kind) >= 0) return this._eventEl(m);
      var sender = m.sender || { id: '', name: '', role: '' };
      var node = el('div', 'chatd-msg chatd-msg--' + kind + (own ? ' chatd-msg--own' : ''), null, {
        role: 'listitem', 'data-seq': String(m.seq), 'data-kind': kind
      });
      if (!own) {
        var person = this.session.people.get(sender.id);  // the order's participants carry avatar_url
        node.appendChild(D.avatar({ name: sender.name, avatar_url: person ? person.avatar_url : null }, sender.role));
      }
      var main = el('div', 'chatd-msg-main');
      main.appendChild(this._headEl(sender, m.ts, own));
      var bubble = el('div', 'chatd-bubble');
      if (kind === 'note') bubble.appendChild(this._noteTag());
      bubble.appendChild(this._textEl(m.text));
      if (m.attachments && m.attachments.length) bubble.appendChild(this._attachmentsEl(m.attachments));
      main.appendChild(bubble);
      if (own) main.appendChild(el('div', 'chatd-msg-foot'));
      node.appendChild(main);
      return node;
    }

    _noteTag() {
      var tag = el('span', 'chatd-note-tag');
      tag.appendChild(icon('lock'));
      tag.appendChild(el('span', null, 'Internal note'));
      return tag;
    }

    /** @param {{id: string, name: string, role: string}} sender @param {number} ts @param {boolean} own */
    _headEl(sender, ts, own) {
      var head = el('div', 'chatd-msg-head');
      head.appendChild(el('span', 'chatd-name', own ? 'You' : sender.name));
      if (!own && sender.role) head.appendChild(el('span', 'chatd-role chatd-role-' + sender.role, D.roleLabel(sender.role)));
      if (ts) head.appendChild(this._timeEl(ts));
      return head;
    }

    /** @param {number} ts */
    _timeEl(ts) {
      return el('time', 'chatd-time', this.fmt.time(ts), { datetime: new Date(ts).toISOString(), title: this.fmt.full(ts) });
    }

    /** @param {string | null | undefined} text */
    _textEl(text) {
      var t = el('div', 'chatd-text', null, { dir: 'auto' });
      D.appendLinkified(t, String(text == null ? '' : text));
      return t;
    }

    /** @param {Message} m */
    _eventEl(m) {
      var kind = m.kind;
      var node = el('div', 'chatd-event chatd-event--' + kind, null, { role: 'listitem', 'data-seq': String(m.seq), 'data-kind': kind });
      if (kind === 'status' && m.status) {
        node.setAttribute('data-status', m.status);
        node.setAttribute('data-tone', this.tones.get(m.status) || 'neutral');
      }
      if (kind === 'dispute' && /^Dispute closed/.test(String(m.text || ''))) node.classList.add('chatd-event--resolved');
      var card = el('div', 'chatd-event-card');
      card.appendChild(icon(kind === 'status' ? 'box' : kind === 'dispute' ? 'alert' : 'info', 'chatd-event-icon'));
      var bodyEl = el('div', 'chatd-event-body');
      if (kind === 'status' && m.status) bodyEl.appendChild(el('span', 'chatd-event-status', this._statusLabel(m.status)));
      bodyEl.appendChild(this._textEl(m.text));
      var meta = el('div', 'chatd-event-meta');
      if (m.sender && m.sender.id !== 'system') {
        meta.appendChild(el('span', 'chatd-name', m.sender.name));
        if (m.sender.role) meta.appendChild(el('span', 'chatd-role chatd-role-' + m.sender.role, D.roleLabel(m.sender.role)));
      }
      meta.appendChild(this._timeEl(m.ts));
      bodyEl.appendChild(meta);
      card.appendChild(bodyEl);
      node.appendChild(card);
      return node;
    }

    /** @param {AttachmentRef[]} atts */
    _attachmentsEl(atts) {
      var self = this, wrap = el('ul', 'chatd-atts', null, { 'aria-label': 'Attachments' });
      atts.forEach(function (a) {
        var li = el('li');
        var b = el('button', 'chatd-att', null, { type: 'button', title: 'Download ' + a.name });
        if (D.IMAGE_TYPES.indexOf(String(a.mime)) >= 0) {
          // a preview of the (sniffed) image, fetched with the token like a download
          var img = el('img', 'chatd-thumb', null, { alt: a.name, 'data-att': a.id });
          b.classList.add('chatd-att--image');
          b.appendChild(img);
          if (self.thumbIo) self.thumbIo.observe(img);
          else self._loadThumb(img);
        }
        b.appendChild(icon('file'));
        b.appendChild(el('span', 'chatd-att-name', a.name));
        b.appendChild(el('span', 'chatd-att-size', D.formatSize(a.size || 0)));
        b.addEventListener('click', function () { self._download(a); });
        li.appendChild(b);
        wrap.appendChild(li);
      });
      return wrap;
    }

    /** An attachment with the token (its URL alone is refused). @param {string} id */
    _fetchAttachment(id) {
      var self = this;
      return this.session.token().then(function (token) {
        return fetch(self.baseUrl + '/api/v1/attachments/' + encodeURIComponent(id), { headers: { Authorization: 'Bearer ' + token } });
      }).then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.blob();
      });
    }

    /** @param {HTMLImageElement} img */
    _loadThumb(img) {
      var self = this, id = img.getAttribute('data-att') || '';
      if (!this.thumbs.has(id)) {
        this.thumbs.set(id, this._fetchAttachment(id).then(D.dataUrl, function () {
          self.thumbs.delete(id); // shown as a plain file button; tried again on the next render
          return null;
        }));
      }
      /** @type {Promise<string | null>} */ (this.thumbs.get(id)).then(function (url) {
        if (url && !self.destroyed) img.src = url;
        else if (img.parentNode) img.parentNode.removeChild(img);
      });
    }

    /** Attachments need the token: fetch, then hand the browser a blob URL. @param {AttachmentRef} a */
    _download(a) {
      var self = this;
      this._fetchAttachment(a.id).then(function (blob) {
        var url = URL.createObjectURL(blob);
        var link = el('a', null, null, { href: url, download: a.name, rel: 'noopener' });
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
      }).catch(function (e) {
        self._emit('error', { code: 'attachment', message: String(e && e.message || e) });
      });
    }

    /** @param {OutboxItem} item */
    _renderPending(item) {
      var node = el('div', 'chatd-msg chatd-msg--own chatd-msg--pending chatd-msg--' + item.kind, null, {
        role: 'listitem', 'data-cid': item.client_id, 'data-kind': item.kind
      });
      var main = el('div', 'chatd-msg-main');
      var head = el('div', 'chatd-msg-head');
      head.appendChild(el('span', 'chatd-name', 'You'));
      main.appendChild(head);
      var bubble = el('div', 'chatd-bubble');
      if (item.kind === 'note') bubble.appendChild(this._noteTag());
      if (item.text) bubble.appendChild(this._textEl(item.text));
      if (item.attachments && item.attachments.length) bubble.appendChild(this._attachmentsEl(item.attachments));
      main.appendChild(bubble);
      main.appendChild(el('div', 'chatd-msg-foot'));
      node.appendChild(main);
      this.pendingEls.set(item.client_id, node);
      var me = this.session.me;
      this.recs.set(node, { ts: item.created, sender: me ? me.id : '', kind: item.kind, own: true, seq: null });
      this.$.list.appendChild(node);
      this._renderPendingState(item);
    }

    /** "Sending…", "Waiting for connection…", or "Not sent" with Retry and Delete. @param {OutboxItem} item */
    _renderPendingState(item) {
      var node = this.pendingEls.get(item.client_id);
      if (!node) return;
      var session = this.session;
      var foot = /** @type {HTMLElement} */ (node.querySelector('.chatd-msg-foot'));
      foot.textContent = '';
      node.classList.toggle('chatd-msg--failed', item.state === 'failed');
      if (item.state === 'failed') {
        foot.appendChild(icon('alert'));
        foot.appendChild(el('span', null, 'Not sent: ' + item.error + ' '));
        var retry = el('button', 'chatd-link-btn', 'Retry', { type: 'button' });
        retry.addEventListener('click', function () { session.retry(item.client_id); });
        var drop = el('button', 'chatd-link-btn', 'Delete', { type: 'button' });
        drop.addEventListener('click', function () { session.discard(item.client_id); });
        foot.appendChild(retry);
        foot.appendChild(drop);
      } else {
        foot.appendChild(icon('clock'));
        foot.appendChild(el('span', null, session.live ? 'Sending…' : 'Waiting for connection…'));
      }
    }

    _updatePendingStates() {
      var self = this;
      this.session.outbox.forEach(function (it) { self._renderPendingState(it); });
    }

    /** New messages from others, read out by screen readers (the last three). @param {Message} m */
    _announce(m) { this._say(this._spoken(m)); }

    /** A resume's new messages: one of them as it is, more as one summary, not one line each. */
    _announceReplay() {
      var msgs = this.replayNew;
      this.replayNew = [];
      if (msgs.length === 1) this._announce(msgs[0]);
      else if (msgs.length) this._say(msgs.length + ' new messages. ' + this._spoken(msgs[msgs.length - 1]));
    }

    /** @param {Message} m */
    _spoken(m) {
      var who = m.sender ? m.sender.name : '';
      var text = String(m.text || '');
      if (text.length > 160) text = text.slice(0, 157) + '…';
      var prefix = m.kind === 'note' ? 'Internal note from ' + who : m.kind === 'text' ? who : D.humanize(m.kind) + ' update';
      return prefix + ': ' + text;
    }

    /** @param {string} text */
    _say(text) {
      var live = this.$.live;
      live.appendChild(el('p', null, text));
      while (live.childNodes.length > 3) live.removeChild(/** @type {ChildNode} */ (live.firstChild));
    }

    // --- rendering: decorations and scroll position, once per frame ----------------

    /** Call before changing the list: remembers what the reader is looking at
     * (`toBottom`: the reader's own action, show the newest). @param {boolean} [toBottom] */
    _beginMutation(toBottom) {
      if (toBottom) this.holdDivider = false;
      if (this.snap) {
        if (toBottom) this.snap.stick = true;
      } else {
        var sc = this.$.scroll, anchor = null, offset = 0;
        var top = sc.getBoundingClientRect().top;
        for (var n = this.$.list.firstElementChild; n; n = n.nextElementSibling) {
          if (!this.recs.has(n)) continue; // separators move around; messages stay put
          var r = n.getBoundingClientRect();
          if (r.bottom > top) { anchor = n; offset = r.top - top; break; }
        }
        this.snap = { stick: !!toBottom || this._nearBottom(), anchor: anchor, offset: offset };
      }
      this._scheduleRender();
    }

    _scheduleRender() {
      if (this.renderQueued || this.destroyed) return;
      this.renderQueued = true;
      var self = this, done = false;
      var run = function () { if (!done) { done = true; self._render(); } };
      requestAnimationFrame(run);
      setTimeout(run, 120); // hidden tabs get no animation frames
    }

    _render() {
      var s = this.session, $ = this.$;
      this.renderQueued = false;
      var snap = this.snap, opening = this.initialAnchor;
      this.snap = null;
      this._decorate();
      var sc = $.scroll;
      if (this.initialAnchor && $.divider.parentNode) {
        this._scrollTo(this._offsetIn($.divider) - 12);
      } else if (this.initialAnchor) {
        this._scrollTo(sc.scrollHeight);
      } else if (snap && snap.stick) {
        this._stickDown();
      } else if (snap && snap.anchor && snap.anchor.isConnected) {
        var delta = snap.anchor.getBoundingClientRect().top - sc.getBoundingClientRect().top - snap.offset;
        this._scrollTo(sc.scrollTop + delta);
      }
      // More unread than the replay holds: fetch earlier pages (at most 10) until
      // the first unread is loaded, so the chat opens on the divider, not above it.
      if (this._unreadNotLoaded() && !s.loadingMore) {
        this.unreadPages++;
        s.loadMore();
      }
      if (this.anchorExpired && !this.awaitReplay && !s.loadingMore) this.initialAnchor = false;
      this.stick = this._nearBottom();
      this._renderTop();
      this._renderJump();
      this._renderOwnState();
      // An earlier page when the reader is at the top (or the list does not fill
      // the view), once the replay after `joined` has settled.
      if (!this.initialAnchor && s.canLoadMore() && sc.scrollTop < LOAD_MORE_PX) s.loadMore();
      if (opening) this._maybeRead(); // what the opening screen shows, once it has settled
    }

    /** Opening on the first unread and it is not loaded yet: earlier pages are still to fetch (at most 10). */
    _unreadNotLoaded() {
      var s = this.session;
      return this.initialAnchor && this.dividerAfter !== null && s.oldestSeq !== null &&
        s.oldestSeq > this.dividerAfter + 1 && s.canLoadMore() && this.unreadPages < 10;
    }

    /**
     * Whether what is on screen may be read. Not while the chat is on its way to the
     * first unread: between two pages, or before the render that moves to the divider,
     * the screen shows messages the reader was never shown.
     */
    _screenSettled() {
      return !(this.initialAnchor && (this.session.loadingMore || this.renderQueued || this._unreadNotLoaded()));
    }

    /** @param {Element} node */
    _offsetIn(node) {
      var sc = this.$.scroll;
      return node.getBoundingClientRect().top - sc.getBoundingClientRect().top + sc.scrollTop;
    }

    /** Day separators, the "new messages" divider, and grouping of consecutive messages. */
    _decorate() {
      var list = this.$.list, divider = this.$.divider;
      this.daySeps.forEach(function (sep) { if (sep.parentNode) sep.parentNode.removeChild(sep); });
      if (divider.parentNode) divider.parentNode.removeChild(divider);
      /** @type {Rec | null} */
      var prev = null;
      /** @type {string | null} */
      var prevDay = null;
      var dividerPlaced = false;
      /** @type {Map<string, HTMLElement>} */
      var used = new Map();
      for (var n = list.firstElementChild; n; n = n.nextElementSibling) {
        var rec = this.recs.get(n);
        if (!rec) continue;
        var day = D.dayKey(rec.ts);
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
          list.insertBefore(divider, n);
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
    }

    _renderTop() {
      var s = this.session, t = this.$.top;
      t.textContent = '';
      if (s.loadingMore) {
        t.appendChild(el('span', 'chatd-spinner', null, { 'aria-hidden': 'true' }));
        t.appendChild(el('span', null, 'Loading earlier messages…'));
      } else if (s.everJoined && !s.canLoadMore()) {
        t.appendChild(el('span', null, s.msgs.size ? 'Beginning of the conversation' : 'No messages yet. Say hello!'));
      }
    }

    _renderJump() {
      var $ = this.$, n = this.session.unread;
      $.jump.hidden = !(!this.stick && this.session.msgs.size > 0);
      $.jumpText.textContent = n > 0 ? n + ' new' : 'Latest';
      $.jump.setAttribute('aria-label', n > 0 ? 'Jump to ' + n + ' new messages' : 'Jump to the latest message');
    }

    /** "Sent" / "Seen by Sam" under the newest own stored message. */
    _renderOwnState() {
      var s = this.session;
      /** @type {{seq: number, el: HTMLElement, kind: string} | null} */
      var newest = null;
      for (var [seq, node] of this.els) {
        if (node.classList.contains('chatd-msg--own') && (!newest || seq > newest.seq)) {
          var m = s.msgs.get(seq);
          newest = { seq: seq, el: node, kind: m ? m.kind : 'text' };
        }
      }
      if (this.$lastOwn && (!newest || this.$lastOwn !== newest.el)) {
        var old = this.$lastOwn.querySelector('.chatd-msg-foot');
        if (old) old.textContent = '';
      }
      if (!newest) return;
      var own = newest;
      this.$lastOwn = own.el;
      var foot = own.el.querySelector('.chatd-msg-foot');
      if (!foot) return;
      /** @type {string[]} */
      var seen = [];
      s.receipts.forEach(function (seq, user) {
        var p = s.people.get(user);
        if (own.kind === 'note' && p && p.role === 'buyer') return; // a buyer's marker passes notes unseen
        if (seq >= own.seq) seen.push(D.firstName(s.nameOf(user)));
      });
      foot.textContent = '';
      foot.appendChild(icon(seen.length ? 'checks' : 'check'));
      foot.appendChild(el('span', null, seen.length ? 'Seen by ' + seen.join(', ') : 'Sent'));
    }

    // --- scrolling, paging, reading -------------------------------------------------

    _nearBottom() {
      var sc = this.$.scroll;
      return sc.scrollHeight - sc.scrollTop - sc.clientHeight < NEAR_BOTTOM_PX;
    }

    /** A reader at the bottom stays there; with new messages not shown yet, down to the first of them, never past it. */
    _stickDown() {
      var sc = this.$.scroll, divider = this.$.divider;
      if (this.holdDivider && divider.parentNode) this._scrollTo(Math.max(sc.scrollTop, this._offsetIn(divider) - 12));
      else this._scrollTo(sc.scrollHeight);
    }

    /** @param {boolean} smooth */
    _scrollToBottom(smooth) {
      var sc = this.$.scroll;
      var reduce = global.matchMedia && global.matchMedia('(prefers-reduced-motion: reduce)').matches;
      if (smooth && !reduce && sc.scrollTo) sc.scrollTo({ top: sc.scrollHeight, behavior: 'smooth' });
      else this._scrollTo(sc.scrollHeight);
      this.stick = true;
      this.initialAnchor = false;
      this.holdDivider = false;
      this._renderJump();
    }

    /** Scroll the list ourselves; the `scroll` event that follows is not the reader's. @param {number} top */
    _scrollTo(top) {
      this.$.scroll.scrollTop = top;
      this.lastTop = this.$.scroll.scrollTop;
    }

    _onScroll() {
      // Only the reader's own scrolling says whether they are at the bottom. Our
      // scrolls and layout changes (a banner appearing) also fire `scroll`, a
      // frame later, when the geometry may have changed meanwhile.
      var top = this.$.scroll.scrollTop;
      if (top === this.lastTop) return;
      this.lastTop = top;
      this.holdDivider = false; // the reader's own scrolling: they choose what they see
      this.stick = this._nearBottom();
      this._renderJump();
      if (!this.initialAnchor && this.session.canLoadMore() && top < LOAD_MORE_PX) this.session.loadMore();
    }

    /** @param {IntersectionObserverEntry[]} entries */
    _onIntersect(entries) {
      for (var i = 0; i < entries.length; i++) {
        var e = entries[i], rec = this.recs.get(e.target);
        if (!rec || rec.seq === null) continue;
        var rootH = e.rootBounds ? e.rootBounds.height : global.innerHeight;
        var seen = e.isIntersecting && (e.intersectionRatio >= 0.5 || e.intersectionRect.height >= rootH * 0.4);
        if (seen) this.intersecting.add(rec.seq);
        else this.intersecting.delete(rec.seq);
      }
      this._maybeRead();
    }

    /**
     * The newest message on screen now, from the layout itself: intersection
     * callbacks may lag behind a scroll on a busy machine, a read must not.
     */
    _seenNow() {
      var sc = this.$.scroll, box = sc.getBoundingClientRect(), max = 0, recs = this.recs;
      if (!this._screenSettled()) return 0;
      var nodes = this.$.list.children;
      for (var i = 0; i < nodes.length; i++) {
        var rec = recs.get(nodes[i]);
        if (!rec || rec.seq === null || rec.seq <= max) continue;
        var r = nodes[i].getBoundingClientRect();
        var shown = Math.min(r.bottom, box.bottom) - Math.max(r.top, box.top);
        if (shown > 0 && (shown >= r.height * 0.5 || shown >= box.height * 0.4)) max = rec.seq;
      }
      return max;
    }

    /** Move the read marker to the newest message actually on screen in a visible page. */
    _maybeRead() {
      if (!pageVisible() || !this.session.live) return;
      if (!this._screenSettled()) return;
      var max = 0;
      this.intersecting.forEach(function (s) { if (s > max) max = s; });
      this.session.read(max);
    }

    // --- composer ---------------------------------------------------------------------

    _submit() {
      var text = this.$.input.value;
      var ready = this.attached.filter(function (a) { return a.state === 'ready'; });
      if (this._uploading() || (!text.trim() && !ready.length) || text.trim().length > this.maxLength || this.session.fatal) return;
      this.session.stopTyping();
      this.send(text, {
        note: this.noteMode,
        attachments: ready.map(function (a) { return /** @type {AttachmentRef} */ (a.ref); })
      });
      this.$.input.value = '';
      this.attached = [];
      this._renderChips();
      this._autosize();
      this._updateComposer();
    }

    _onInput() {
      this._autosize();
      this._updateComposer();
      if (!this.$.input.value.trim()) this.session.stopTyping();
      else this.session.typing(this.noteMode); // a note's typing is told to note readers only
    }

    _autosize() {
      var ta = this.$.input;
      ta.style.height = 'auto';
      ta.style.height = Math.min(ta.scrollHeight + 2, 160) + 'px';
    }

    _updateComposer() {
      var $ = this.$;
      var n = $.input.value.trim().length;
      var files = this.attached.some(function (a) { return a.state === 'ready'; });
      $.send.disabled = (n === 0 && !files) || n > this.maxLength || this._uploading();
      var left = this.maxLength - n;
      $.count.textContent = left < 200 ? (left >= 0 ? left + ' characters left' : 'Too long by ' + (-left) + ' characters') : '';
      $.count.classList.toggle('chatd-count--over', left < 0);
    }

    /** @param {boolean} on */
    _setNoteMode(on) {
      var $ = this.$;
      this.noteMode = !!on && this.session.mayWriteNotes();
      $.note.setAttribute('aria-pressed', String(this.noteMode));
      $.form.classList.toggle('chatd-composer--note', this.noteMode);
      $.input.placeholder = this.noteMode ? 'Write an internal note (never shown to the buyer)…' : 'Write a message…';
      if (this.session.typingActive) this.session.typing(this.noteMode); // the others see the right kind at once
    }

    // --- attachments in the composer ----------------------------------------------

    _uploading() {
      return this.attached.some(function (a) { return a.state === 'uploading'; });
    }

    /** Upload a chosen file at once (the server checks its content, not its name). @param {File} file */
    _attach(file) {
      var self = this;
      /** @type {Attached} */
      var a = { name: file.name || 'file', size: file.size, state: 'uploading', ref: null, error: null };
      this.attached.push(a);
      this._renderChips();
      this._updateComposer();
      this.session.token().then(function (token) {
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
    }

    _renderChips() {
      var self = this, ul = this.$.chips;
      ul.textContent = '';
      ul.hidden = !this.attached.length;
      this.attached.forEach(function (a) {
        var li = el('li', 'chatd-chip chatd-chip--' + a.state);
        li.appendChild(icon(a.state === 'failed' ? 'alert' : 'file'));
        li.appendChild(el('span', 'chatd-att-name', a.name));
        li.appendChild(el('span', 'chatd-att-size', a.state === 'uploading' ? 'uploading…'
          : a.state === 'failed' ? a.error : D.formatSize(a.size || 0)));
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
    }
  }

  // --- 3. public object -------------------------------------------------------------

  /** @type {any} */ (global).ChatdWidget = {
    version: '1',
    /** The chatd base URL this script came from (the components' default `url`). */
    baseUrl: defaultBaseUrl,
    /**
     * Mount a chat for one order into `element` (an Element or a CSS selector).
     * @param {Element | string} element @param {WidgetOptions} options
     */
    mount: function (element, options) {
      var node = typeof element === 'string' ? document.querySelector(element) : element;
      return new Widget(node, options || /** @type {any} */ ({}));
    }
  };
})(window);
