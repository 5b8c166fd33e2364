// @ts-check
/*! chatd staff console: the inbox for staff, over the attention queue and all threads.
 *
 *   ChatdWidget.console(el, {url, token})   a staff token's console, with the chat beside the list
 *
 * The list is REST `GET /api/v1/threads` (the token as Bearer): the attention queue
 * (`attention=true`) or every thread, with the filters dispute, status, awaiting reply,
 * overdue and the search `q` (text, participant names, e-mails, order ids). Unread counts
 * are the shared staff marker's (`staff_unread`, and live from the page's one WebSocket,
 * shared with the badge, bell and inbox); "Unread" filters on them. Selected threads are
 * marked read or unread with `POST /api/v1/threads/read`; follow and unfollow are frames
 * on the shared connection. Any `unread` or `notify` frame reloads the list, so a new
 * help request or dispute shows at once. Choosing a thread opens the widget (with its
 * status and dispute controls) beside the list, or in its place on a phone.
 * chatd serves this file as part of /widget.js (after components.js). Data as text only.
 */
(function (global) {
  'use strict';

  /** @type {typeof import('./dom.js')} */
  var D = /** @type {any} */ (global).ChatdDom;
  /** @type {any} */
  var Widget = /** @type {any} */ (global).ChatdWidget;
  if (!D || !Widget || !Widget._components) throw new Error('chatd console: load chatd\'s /widget.js first');
  var C = Widget._components;
  var el = D.el, icon = D.icon;
  var PAGE = 100;
  var PAGE_MAX = 200; // the route's cap: a live reload keeps up to this many rows
  var RELOAD_MS = 150; // frames come in bursts (unread, notify): one reload for a burst
  var REASONS = /** @type {Record<string, string>} */ ({ dispute: 'Dispute', sla: 'SLA breach', help: 'Help requested', followed: 'Followed' });
  var counter = 0;

  /**
   * @typedef {import('./session.js').Message} Message
   * @typedef {{seq: number, since: number, due_at: number | null, overdue: boolean}} Awaiting
   * @typedef {{order: string, status: string, dispute_open: boolean, participants: {id: string, name: string, role: string}[],
   *   last_message: Message | null, activity_ts: number, awaiting_reply: Awaiting | null, reasons?: string[], staff_unread?: number,
   *   matches?: Message[]}} Thread
   */

  /** A word folded as the search folds it (case, Latin diacritics). @param {string} w */
  var fold = function (w) { return w.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase(); };
  /** The words of a search, as the server takes them (letters and digits). @param {string} q */
  var searchWords = function (q) { return (q.match(/[\p{L}\p{N}]+/gu) || []).map(fold); };

  /**
   * A matching message's snippet, its words found by the search marked: <mark> with
   * textContent, the rest text nodes (a message is data, never markup).
   * @param {HTMLElement} into @param {Message} m @param {string[]} words
   */
  var markedSnippet = function (into, m, words) {
    var text = String(m.text || ''), hits = [], hit;
    var re = /[\p{L}\p{N}]+/gu;
    while ((hit = re.exec(text))) {
      var w = fold(hit[0]);
      // as on the server: a word or its prefix, a one-letter word only itself
      if (words.some(function (q) { return q.length > 1 ? w.indexOf(q) === 0 : w === q; })) hits.push(hit);
    }
    // a match deep in a long message: start shortly before it, or the row's ellipsis would hide it
    var at = hits.length && hits[0].index > 40 ? text.lastIndexOf(' ', hits[0].index - 20) + 1 : 0;
    var who = m.sender && m.sender.id !== 'system' ? m.sender.name + ': ' : '';
    into.appendChild(document.createTextNode(who + (at ? '…' : '')));
    hits.forEach(function (h) {
      into.appendChild(document.createTextNode(text.slice(at, h.index)));
      into.appendChild(el('mark', null, h[0]));
      at = h.index + h[0].length;
    });
    into.appendChild(document.createTextNode(text.slice(at)));
  };

  /**
   * The staff console. Events: `chatd:open` ({order}), as the inbox.
   * `pageSize`: threads per page ("Load more" fetches the next), 1 to 200, default 100.
   * @param {Element} host @param {{url?: string, token: any, locale?: string, css?: string | boolean, title?: string, pageSize?: number}} opts
   */
  function staffConsole(host, opts) {
    if (!host) throw new TypeError('ChatdWidget.console: element required');
    var feed = C.feedFor(opts), fmt = D.makeFormatters(opts.locale), id = 'chatd-console-' + (++counter);
    var page = Math.max(1, Math.min(PAGE_MAX, Math.floor(Number(opts.pageSize) || PAGE)));
    var sh = C.shadowIn(host, 'div', opts, feed.baseUrl);
    sh.box.style.height = '100%';
    var root = el('section', 'chatd chatd-inbox chatd-console', null, { 'aria-label': opts.title || 'Staff console' });
    var listPane = el('div', 'chatd-inbox-list');
    var head = el('div', 'chatd-inbox-head');
    head.appendChild(el('h2', 'chatd-title', opts.title || 'Staff console'));
    var total = el('span', 'chatd-cbadge', null, { hidden: '' });
    head.appendChild(total);

    var scopes = el('div', 'chatd-console-scopes', null, { role: 'group', 'aria-label': 'Threads' });
    /** @type {Record<string, HTMLElement>} */
    var scopeBtn = {};
    [['attention', 'Attention queue'], ['all', 'All threads']].forEach(function (s) {
      var b = el('button', 'chatd-filter', s[1], { type: 'button', 'aria-pressed': String(s[0] === 'attention'), 'data-scope': s[0] });
      b.addEventListener('click', function () {
        Object.keys(scopeBtn).forEach(function (k) { scopeBtn[k].setAttribute('aria-pressed', String(k === s[0])); });
        reload(0);
      });
      scopeBtn[s[0]] = b;
      scopes.appendChild(b);
    });

    var search = /** @type {HTMLInputElement} */ (el('input', 'chatd-input chatd-inbox-search', null, {
      type: 'search', id: id + '-q', placeholder: 'Search text, name, e-mail or order', autocomplete: 'off', maxlength: '1000'
    }));
    var searchLabel = el('label', 'chatd-sr', 'Search threads', { for: id + '-q' });
    var filters = el('div', 'chatd-inbox-filters', null, { role: 'group', 'aria-label': 'Filters' });
    /** @type {Record<string, HTMLElement>} */
    var chips = {};
    [['unread', 'Unread'], ['dispute', 'Open disputes'], ['awaiting', 'Awaiting reply'], ['overdue', 'Overdue']].forEach(function (f) {
      var b = el('button', 'chatd-filter', f[1], { type: 'button', 'aria-pressed': 'false', 'data-filter': f[0] });
      b.addEventListener('click', function () {
        b.setAttribute('aria-pressed', String(b.getAttribute('aria-pressed') !== 'true'));
        f[0] === 'unread' ? render() : reload(0);
      });
      chips[f[0]] = b;
      filters.appendChild(b);
    });
    var statusSel = /** @type {HTMLSelectElement} */ (el('select', 'chatd-console-status', null, { id: id + '-status' }));
    statusSel.appendChild(el('option', null, 'Any status', { value: '' }));
    var statusLabel = el('label', 'chatd-sr', 'Status', { for: id + '-status' });
    statusSel.addEventListener('change', function () { reload(0); });
    filters.appendChild(statusLabel);
    filters.appendChild(statusSel);

    var bulk = el('div', 'chatd-console-bulk', null, { role: 'group', 'aria-label': 'Selected threads' });
    var all = /** @type {HTMLInputElement} */ (el('input', null, null, { type: 'checkbox', id: id + '-all' }));
    var allLabel = el('label', 'chatd-console-all', null, { for: id + '-all' });
    var selCount = el('span', null, 'Select all');
    allLabel.appendChild(all);
    allLabel.appendChild(selCount);
    var markRead = /** @type {HTMLButtonElement} */ (el('button', 'chatd-action', 'Mark read', { type: 'button', disabled: '' }));
    var markUnread = /** @type {HTMLButtonElement} */ (el('button', 'chatd-action', 'Mark unread', { type: 'button', disabled: '' }));
    [allLabel, markRead, markUnread].forEach(function (n) { bulk.appendChild(n); });

    var note = el('p', 'chatd-console-note', null, { role: 'status', 'aria-live': 'polite' });
    var alertBox = el('p', 'chatd-console-alert', null, { role: 'alert', hidden: '' });
    var rows = el('ul', 'chatd-inbox-rows', null, { 'aria-label': 'Threads' });
    var empty = el('p', 'chatd-inbox-empty', 'Loading…');
    var more = /** @type {HTMLButtonElement} */ (el('button', 'chatd-action chatd-console-more', 'Load more', { type: 'button', hidden: '' }));
    [head, scopes, searchLabel, search, filters, bulk, note, alertBox, rows, more, empty].forEach(function (n) { listPane.appendChild(n); });

    var chatPane = el('div', 'chatd-inbox-chat');
    var back = el('button', 'chatd-action chatd-inbox-back', null, { type: 'button' });
    back.appendChild(icon('back'));
    back.appendChild(el('span', null, 'All threads'));
    var chatBox = el('div', 'chatd-inbox-chatbox');
    var placeholder = el('p', 'chatd-inbox-placeholder', 'Choose a thread to see its chat.');
    chatPane.appendChild(back);
    chatPane.appendChild(chatBox);
    chatPane.appendChild(placeholder);
    var grid = el('div', 'chatd-inbox-grid');
    grid.appendChild(listPane);
    grid.appendChild(chatPane);
    root.appendChild(grid);
    sh.root.appendChild(root);

    /** @type {Thread[]} */
    var threads = [];
    var loaded = false;
    /** @type {string | null} */
    var nextCursor = null;
    /** @type {Set<string>} */
    var selected = new Set();
    /** @type {Set<string>} */
    var statuses = new Set();
    /** @type {string | null} */
    var current = null;
    /** @type {any} */
    var widget = null;
    var generation = 0;
    /** @type {string[]} the words of the search the rows answer (none: no search) */
    var searched = [];
    /** @type {any} */
    var timer = null;
    var destroyed = false;

    /** @param {string} text */
    var fail = function (text) { alertBox.textContent = text; alertBox.hidden = !text; };

    /** @param {string} path @param {RequestInit} [init] */
    var call = function (path, init) {
      return feed._token().then(function (/** @type {string} */ token) {
        var headers = { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' };
        return fetch(feed.baseUrl + path, Object.assign({ headers: headers }, init || {}));
      }).then(function (/** @type {Response} */ r) {
        return r.json().catch(function () { return {}; }).then(function (/** @type {any} */ data) {
          if (r.ok) return data;
          var msg = data && data.error && data.error.message ? String(data.error.message) : 'HTTP ' + r.status;
          throw new Error(r.status === 401 || r.status === 403 ? 'This console needs a valid staff token (' + msg + ').' : msg);
        });
      });
    };

    /** @param {number} limit @param {string | null} cursor */
    var query = function (limit, cursor) {
      var p = new URLSearchParams({ limit: String(limit) });
      if (cursor) p.set('cursor', cursor);
      if (scopeBtn.attention.getAttribute('aria-pressed') === 'true') p.set('attention', 'true');
      else p.set('has_messages', 'any');
      if (chips.dispute.getAttribute('aria-pressed') === 'true') p.set('dispute', 'open');
      if (chips.awaiting.getAttribute('aria-pressed') === 'true') p.set('awaiting_reply', 'true');
      if (chips.overdue.getAttribute('aria-pressed') === 'true') p.set('overdue', 'true');
      if (statusSel.value) p.set('status', statusSel.value);
      var q = search.value.trim();
      if (/[\p{L}\p{N}]/u.test(q)) p.set('q', q);
      return p.toString();
    };

    /** Reload the list (after `ms`: bursts of frames reload once). @param {number} ms */
    var reload = function (ms) {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var gen = ++generation, words = searchWords(search.value.trim());
        // as many rows as are shown (pages loaded with "Load more"), up to the route's cap
        var limit = Math.min(PAGE_MAX, Math.max(page, threads.length));
        call('/api/v1/threads?' + query(limit, null)).then(function (/** @type {any} */ data) {
          if (gen !== generation || destroyed) return;
          threads = Array.isArray(data.threads) ? data.threads : [];
          searched = words;
          nextCursor = typeof data.next_cursor === 'string' ? data.next_cursor : null;
          loaded = true;
          fail('');
          render();
        }, function (/** @type {Error} */ e) {
          if (gen !== generation || destroyed) return;
          loaded = true;
          fail(e.message);
          render();
        });
      }, ms);
    };

    /** The shared staff count: live from the connection when the order is in the queue. @param {Thread} t */
    var unreadOf = function (t) {
      if (feed.fatal) return 0; // stopped for good: no count that no longer follows the server
      var e = feed.entries.get(t.order);
      if (e && e.reasons && e.reasons.length) return e.unread;
      return t.staff_unread || 0;
    };
    /** @param {Thread} t */
    var reasonsOf = function (t) {
      var e = feed.entries.get(t.order);
      return e && e.reasons ? e.reasons : t.reasons || [];
    };

    /** @param {string} order */
    var open = function (order) {
      if (widget) widget.destroy();
      current = order;
      placeholder.hidden = true;
      widget = Widget.mount(chatBox, { url: feed.baseUrl, token: feed.tokenOpt, order: order, locale: opts.locale });
      widget.on('message', function (/** @type {any} */ d) { if (d.own) feed.saw(d.message); });
      root.classList.add('chatd-inbox--open');
      back.focus({ preventScroll: true });
      C.emit(host, 'open', { order: order }, opts);
      render();
    };
    back.addEventListener('click', function () {
      root.classList.remove('chatd-inbox--open');
      var row = rows.querySelector('[aria-current="true"]');
      if (row) /** @type {HTMLElement} */ (row).focus();
    });
    search.addEventListener('input', function () { reload(250); });
    more.addEventListener('click', function () {
      if (!nextCursor) return;
      var gen = generation;
      more.disabled = true;
      call('/api/v1/threads?' + query(page, nextCursor)).then(function (/** @type {any} */ data) {
        more.disabled = false;
        if (gen !== generation || destroyed) return;
        var seen = new Set(threads.map(function (t) { return t.order; }));
        (Array.isArray(data.threads) ? data.threads : []).forEach(function (/** @type {Thread} */ t) {
          if (!seen.has(t.order)) threads.push(t);
        });
        nextCursor = typeof data.next_cursor === 'string' ? data.next_cursor : null;
        render();
      }, function (/** @type {Error} */ e) { more.disabled = false; fail(e.message); });
    });

    /** @param {boolean} unread */
    var mark = function (unread) {
      var orders = Array.from(selected);
      if (!orders.length) return;
      /** @type {Record<string, any>} */
      var body = { orders: orders };
      if (unread) body.unread = true;
      markRead.disabled = markUnread.disabled = true;
      call('/api/v1/threads/read', { method: 'POST', body: JSON.stringify(body) }).then(function () {
        selected.clear();
        note.textContent = 'Marked ' + orders.length + ' thread' + (orders.length === 1 ? '' : 's') + (unread ? ' unread.' : ' read.');
        fail('');
        reload(0);
      }, function (/** @type {Error} */ e) { fail(e.message); render(); });
    };
    markRead.addEventListener('click', function () { mark(false); });
    markUnread.addEventListener('click', function () { mark(true); });
    all.addEventListener('change', function () {
      visible().forEach(function (t) { if (all.checked) selected.add(t.order); else selected.delete(t.order); });
      render();
    });

    /** @param {string} order @param {boolean} follow */
    var setFollow = function (order, follow) {
      if (!feed.send({ type: follow ? 'follow' : 'unfollow', order: order })) fail('Not connected: try again in a moment.');
    };

    var visible = function () {
      var onlyUnread = chips.unread.getAttribute('aria-pressed') === 'true';
      return threads.filter(function (t) { return !onlyUnread || unreadOf(t) > 0; });
    };

    /** @param {Awaiting | null} a */
    var slaChip = function (a) {
      if (!a) return null;
      var chip = a.due_at === null // no reply time is set: nothing is ever due
        ? el('span', 'chatd-status chatd-console-sla', 'Waiting since ' + fmt.short(a.since), { 'data-tone': 'info', 'data-sla': 'waiting' })
        : a.overdue
          ? el('span', 'chatd-status chatd-console-sla', 'Overdue since ' + fmt.short(a.due_at), { 'data-tone': 'danger', 'data-sla': 'overdue' })
          : el('span', 'chatd-status chatd-console-sla', 'Reply due ' + fmt.short(a.due_at), { 'data-tone': 'info', 'data-sla': 'due' });
      chip.setAttribute('title', 'Buyer waiting since ' + fmt.full(a.since));
      return chip;
    };

    var render = function () {
      if (feed.fatal) fail(feed.fatal); // said above the threads, which stay listed without counts
      total.hidden = feed.total === 0 || !!feed.fatal;
      total.textContent = C.countText(feed.total);
      total.setAttribute('aria-label', C.countText(feed.total) + ' unread');
      threads.forEach(function (t) { if (t.status) statuses.add(t.status); });
      if (statusSel.value) statuses.add(statusSel.value);
      if (statusSel.options.length !== statuses.size + 1) {
        var keep = statusSel.value;
        while (statusSel.options.length > 1) statusSel.remove(1);
        Array.from(statuses).sort().forEach(function (s) { statusSel.appendChild(el('option', null, D.humanize(s), { value: s })); });
        statusSel.value = keep;
      }
      var list = visible();
      var known = new Set(threads.map(function (t) { return t.order; }));
      selected.forEach(function (o) { if (!known.has(o)) selected.delete(o); });
      rows.textContent = '';
      list.forEach(function (t) {
        var n = unreadOf(t), reasons = reasonsOf(t), followed = reasons.indexOf('followed') >= 0;
        var li = el('li', 'chatd-console-row', null, { 'data-order': t.order, 'data-sla': !t.awaiting_reply ? 'none' : t.awaiting_reply.overdue ? 'overdue' : t.awaiting_reply.due_at === null ? 'waiting' : 'due' });
        var box = /** @type {HTMLInputElement} */ (el('input', 'chatd-console-check', null, { type: 'checkbox', 'aria-label': 'Select order ' + t.order }));
        box.checked = selected.has(t.order);
        box.addEventListener('change', function () {
          if (box.checked) selected.add(t.order); else selected.delete(t.order);
          render();
        });
        var b = el('button', 'chatd-inbox-row' + (n ? ' chatd-inbox-row--unread' : ''), null, {
          type: 'button', 'data-order': t.order, 'aria-current': String(t.order === current)
        });
        var top = el('span', 'chatd-inbox-top');
        top.appendChild(el('strong', 'chatd-inbox-order', t.order, { title: t.order }));
        if (t.status) top.appendChild(el('span', 'chatd-status', D.humanize(t.status), { 'data-tone': 'neutral' }));
        // an open dispute is said once: the red mark stands for the queue reason too
        var queued = reasons.indexOf('dispute') >= 0;
        if (t.dispute_open || queued) top.appendChild(el('span', 'chatd-dispute-mark', 'Dispute', queued ? { 'data-reason': 'dispute' } : undefined));
        if (t.last_message) {
          top.appendChild(el('time', 'chatd-time', fmt.short(t.last_message.ts), { datetime: new Date(t.last_message.ts).toISOString() }));
        }
        b.appendChild(top);
        var bottom = el('span', 'chatd-inbox-bottom');
        // while searching, the message that matched (the newest of them), not the newest message
        var hit = searched.length && t.matches && t.matches.length ? t.matches[0] : null;
        var text = bottom.appendChild(el('span', 'chatd-inbox-text', hit ? null : C.snippet(t.last_message)));
        if (hit) markedSnippet(text, hit, searched);
        if (n) bottom.appendChild(el('span', 'chatd-cbadge', C.countText(n), { 'aria-label': C.countText(n) + ' unread' }));
        b.appendChild(bottom);
        var tags = el('span', 'chatd-console-tags');
        var sla = slaChip(t.awaiting_reply);
        if (sla) tags.appendChild(sla);
        reasons.filter(function (/** @type {string} */ r) { return r !== 'followed' && r !== 'dispute'; }).forEach(function (/** @type {string} */ r) {
          tags.appendChild(el('span', 'chatd-console-reason', REASONS[r] || r, { 'data-reason': r }));
        });
        if (tags.childNodes.length) b.appendChild(tags);
        b.addEventListener('click', function () { open(t.order); });
        var fol = el('button', 'chatd-action chatd-console-follow', followed ? 'Following' : 'Follow', {
          type: 'button', 'aria-pressed': String(followed), 'aria-label': (followed ? 'Following' : 'Follow') + ' order ' + t.order,
          title: followed ? 'Unfollow: take it out of your queue' : 'Follow: keep it in your queue'
        });
        fol.addEventListener('click', function () { setFollow(t.order, !followed); });
        li.appendChild(box);
        li.appendChild(b);
        li.appendChild(fol);
        rows.appendChild(li);
      });
      var chosen = selected.size;
      selCount.textContent = chosen ? chosen + ' selected' : 'Select all';
      all.checked = !!list.length && list.every(function (t) { return selected.has(t.order); });
      markRead.disabled = markUnread.disabled = !chosen;
      more.hidden = !nextCursor;
      empty.hidden = !!list.length;
      empty.textContent = feed.fatal ? feed.fatal : !loaded ? 'Loading…' : 'No thread matches.';
    };

    /** A refused follow or unfollow (e.g. `forbidden`: this staff id holds a slot there). @param {Record<string, any>} f */
    var onError = function (f) {
      if (typeof f.ref === 'string' && threads.some(function (t) { return t.order === f.ref; })) {
        fail('Order ' + f.ref + ': ' + String(f.message || f.code || 'refused'));
      }
    };
    feed.errorListeners.add(onError);
    var first = true;
    var release = feed.use(function () {
      render();
      reload(first ? 0 : RELOAD_MS);
      first = false;
    });
    return {
      open: open,
      reload: function () { reload(0); },
      destroy: function () {
        destroyed = true;
        feed.errorListeners.delete(onError);
        clearTimeout(timer);
        release();
        if (widget) widget.destroy();
        sh.box.remove();
      }
    };
  }

  Widget.console = staffConsole;
})(window);
