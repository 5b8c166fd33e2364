// @ts-check
// chatd's own staff console page (/console): ?token=… or a pasted staff token mounts
// ChatdWidget.console over this origin (no CORS needed). The token stays in this tab only.
(function () {
  'use strict';
  /** @param {string} id */
  var $ = function (id) { return /** @type {HTMLElement} */ (document.getElementById(id)); };
  var W = /** @type {any} */ (window).ChatdWidget;

  /** @param {string} tok @returns {{sub?: string, name?: string, role?: string}} */
  var claimsOf = function (tok) {
    try {
      return JSON.parse(decodeURIComponent(escape(atob(tok.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')))));
    } catch (e) { return {}; }
  };

  /** @param {string} tok */
  var start = function (tok) {
    var claims = claimsOf(tok);
    if (claims.role !== 'staff') {
      var err = $('login-error');
      err.textContent = claims.role ? 'This is a token of role ' + claims.role + ': the console needs role staff.' : 'This is not a chatd token.';
      err.hidden = false;
      $('login').hidden = false;
      return;
    }
    $('login').hidden = true;
    $('who').textContent = claims.name || claims.sub || '';
    $('console').hidden = false;
    W.console($('console'), { url: location.origin, token: tok });
  };

  var form = /** @type {HTMLFormElement} */ ($('login'));
  form.addEventListener('submit', function (ev) {
    ev.preventDefault(); // never submitted: the token does not leave this page
    var tok = /** @type {HTMLTextAreaElement} */ ($('token')).value.trim();
    if (tok) start(tok);
  });
  var q = new URLSearchParams(location.search).get('token');
  if (q) start(q);
  else form.hidden = false;
})();
