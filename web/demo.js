// @ts-check
// The demo order page: ?order=…&token=… mounts the widget as that user.
(function () {
  'use strict';
  var q = new URLSearchParams(location.search);
  var order = q.get('order');
  var token = q.get('token');
  /** @param {string} id */
  var $ = function (id) { return /** @type {HTMLElement} */ (document.getElementById(id)); };

  if (!order || !token) {
    /** @type {HTMLElement} */ (document.querySelector('main')).hidden = true;
    $('missing').hidden = false;
    return;
  }

  // Only for the page header: the server checks the token, the page just reads its claims.
  /** @type {{name?: string, sub?: string, role?: string}} */
  var claims = {};
  try {
    var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    claims = JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch (e) { claims = {}; }
  /** @type {Record<string, string>} */
  var roles = { buyer: 'Buyer', supplier: 'Supplier', sales_rep: 'Sales rep', staff: 'Staff', bot: 'Bot' };
  $('who').textContent = (claims.name || claims.sub || '') + (claims.role ? ' · ' + (roles[claims.role] || claims.role) : '');
  $('order-id').textContent = order;
  $('crumb-order').textContent = order;
  document.title = 'Order ' + order + ' · ' + (claims.name || 'chat');

  /** @param {string | null | undefined} s */
  var humanize = function (s) {
    s = String(s || '').replace(/[_-]+/g, ' ');
    return s.charAt(0).toUpperCase() + s.slice(1);
  };

  // the shop bar: the bell over the user's orders, and their orders page
  /** @param {string} o */
  var chatLink = function (o) { return '/demo?' + new URLSearchParams({ order: o, token: String(token) }).toString(); };
  /** @type {HTMLAnchorElement} */ ($('all-orders')).href = '/demo/orders?' + new URLSearchParams({ token: String(token) }).toString();
  /** @type {any} */ (window).ChatdWidget.bell($('bell'), { url: location.origin, token: token, link: chatLink });

  var widget = /** @type {any} */ (window).ChatdWidget.mount($('chat'), { url: location.origin, order: order, token: token });
  /** @type {any} */ (window).chatdDemoWidget = widget;
  widget.on('order', function (/** @type {{status: string}} */ d) {
    $('order-status').textContent = humanize(d.status);
    if (!$('bot').hidden) refreshBot();
  });
  widget.on('unread', function (/** @type {{count: number}} */ d) {
    document.title = (d.count ? '(' + d.count + ') ' : '') + 'Order ' + order + ' · ' + (claims.name || 'chat');
  });

  // The demo bot exists only under `chatd demo`, and posts as the shop's side: not offered to the buyer.
  if (claims.role === 'buyer') return;
  var auth = { Authorization: 'Bearer ' + token };
  // the order shown: the page is the same for every demo order
  var botUrl = '/demo/bot?' + new URLSearchParams({ order: order }).toString();
  /** @param {string} next */
  var label = function (next) { $('bot-post').textContent = 'Post “' + humanize(next) + '” as the demo bot'; };
  var refreshBot = function () {
    fetch(botUrl, { headers: auth }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (i) { if (i) label(i.next); }).catch(function () {});
  };
  fetch(botUrl, { headers: auth }).then(function (r) { return r.ok ? r.json() : null; }).then(function (info) {
    if (!info) return;
    $('bot').hidden = false;
    label(info.next);
    $('bot-post').addEventListener('click', function () {
      var btn = /** @type {HTMLButtonElement} */ (this);
      btn.disabled = true;
      fetch(botUrl, { method: 'POST', headers: auth })
        .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
        .then(function (res) {
          $('bot-result').textContent = res.ok ? 'Posted: ' + humanize(res.body.status) : 'Failed: ' + (res.body.error && res.body.error.message);
        })
        .catch(function (e) { $('bot-result').textContent = 'Failed: ' + e; })
        .then(function () { btn.disabled = false; });
    });
  }).catch(function () { /* no bot */ });
})();
