// @ts-check
// The demo orders page: ?token=… shows that user's demo orders with a badge on each
// "Open Chat" button, the bell in the shop bar and the inbox (one WebSocket for all three).
(function () {
  'use strict';
  var ORDERS = ['demo-1001', 'demo-1002', 'demo-1003']; // what `chatd demo` registers
  var q = new URLSearchParams(location.search);
  var token = q.get('token');
  /** @param {string} id */
  var $ = function (id) { return /** @type {HTMLElement} */ (document.getElementById(id)); };
  if (!token) {
    /** @type {HTMLElement} */ (document.querySelector('main')).hidden = true;
    $('missing').hidden = false;
    return;
  }
  var tok = token;
  /** @type {{name?: string, role?: string}} */
  var claims = {};
  try {
    claims = JSON.parse(decodeURIComponent(escape(atob(tok.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')))));
  } catch (e) { claims = {}; }
  $('who').textContent = claims.name || '';

  /** @param {string} order */
  var chatLink = function (order) { return '/demo?' + new URLSearchParams({ order: order, token: tok }).toString(); };
  var W = /** @type {any} */ (window).ChatdWidget;
  var opts = { url: location.origin, token: tok };
  ORDERS.forEach(function (order) {
    var li = document.createElement('li');
    li.className = 'order-card';
    var title = document.createElement('strong');
    title.textContent = 'Order ' + order;
    var open = document.createElement('a');
    open.className = 'open-chat';
    open.href = chatLink(order);
    open.textContent = 'Open Chat';
    li.appendChild(title);
    li.appendChild(open);
    $('cards').appendChild(li);
    W.badge(open, { url: opts.url, token: opts.token, order: order }); // sets data-unread: the CSS turns it red
  });
  W.bell($('bell'), { url: opts.url, token: opts.token, link: chatLink });
  W.inbox($('inbox'), opts);
})();
