// @ts-check
/*! chatd widget: formatting and DOM helpers for the view (widget.js).
 *
 * Every node is built with DOM APIs; data only ever reaches the page through
 * textContent / createTextNode / checked hrefs, never as HTML.
 */

var ChatdDom = (function () {
  'use strict';

  /** @type {Record<string, string>} */
  var ROLE_LABELS = {
    buyer: 'Buyer', supplier: 'Supplier', sales_rep: 'Sales rep',
    staff: 'Staff', bot: 'Bot', system: 'System'
  };

  /** @param {string | null | undefined} role */
  function roleLabel(role) {
    return (role && ROLE_LABELS[role]) || String(role || '');
  }

  /** "out_for_delivery" -> "Out for delivery". @param {string | null | undefined} status */
  function humanize(status) {
    var s = String(status || '').replace(/[_-]+/g, ' ').trim();
    return s ? s.charAt(0).toUpperCase() + s.slice(1) : '';
  }

  /** @param {string | null | undefined} name */
  function firstName(name) {
    return String(name || '').trim().split(/\s+/)[0] || String(name || '');
  }

  /** @param {string | null | undefined} name */
  function initials(name) {
    var parts = String(name || '?').trim().split(/\s+/);
    var s = parts[0].charAt(0) + (parts.length > 1 ? parts[parts.length - 1].charAt(0) : '');
    return s.toUpperCase() || '?';
  }

  /** @param {number} ts */
  function dayKey(ts) {
    var d = new Date(ts);
    return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate();
  }

  /**
   * @typedef {{time(ts: number): string, full(ts: number): string, short(ts: number): string, day(ts: number): string}} Formatters
   * @param {string | undefined} locale
   * @returns {Formatters}
   */
  function makeFormatters(locale) {
    var time = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' });
    var full = new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeStyle: 'short' });
    var dayThisYear = new Intl.DateTimeFormat(locale, { weekday: 'long', day: 'numeric', month: 'long' });
    var dayOtherYear = new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'long', year: 'numeric' });
    var short = new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
    var shortOtherYear = new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'short', year: 'numeric' });
    return {
      time: function (ts) { return time.format(new Date(ts)); },
      full: function (ts) { return full.format(new Date(ts)); },
      // another year's date says its year (a two-year-old dispute must not look three days old)
      short: function (ts) {
        var d = new Date(ts);
        return (d.getFullYear() === new Date().getFullYear() ? short : shortOtherYear).format(d);
      },
      day: function (ts) {
        var d = new Date(ts), now = new Date();
        var yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
        if (dayKey(ts) === dayKey(now.getTime())) return 'Today';
        if (dayKey(ts) === dayKey(yesterday.getTime())) return 'Yesterday';
        return (d.getFullYear() === now.getFullYear() ? dayThisYear : dayOtherYear).format(d);
      }
    };
  }

  /** Only absolute http(s) URLs become links; anything else stays text. @param {string} raw */
  function safeHref(raw) {
    try {
      var u = new URL(raw);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  var URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  /** @param {string} s @param {string} ch */
  function count(s, ch) {
    return s.split(ch).length - 1;
  }

  /** Append `text` to `parent` as text nodes, with http(s) URLs as safe links. @param {Node} parent @param {string} text */
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

  /** @param {number} n bytes */
  function formatSize(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + ' KB';
    return (n / 1024 / 1024).toFixed(1) + ' MB';
  }

  /**
   * el('div', 'cls', 'text') or el('button', 'cls', null, {type: 'button'}).
   * @template {keyof HTMLElementTagNameMap} K
   * @param {K} tag
   * @param {string | null} [cls]
   * @param {string | null} [text]
   * @param {Record<string, string>} [attrs]
   * @returns {HTMLElementTagNameMap[K]}
   */
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
    wifi: 'M4.5 10.5a11 11 0 0115 0M7.5 13.5a6.5 6.5 0 019 0M12 17v.01',
    bell: 'M6 16.5V11a6 6 0 0112 0v5.5l1.5 1.5h-15zM10 20.5a2 2 0 004 0',
    search: 'M10.5 4a6.5 6.5 0 110 13 6.5 6.5 0 010-13zM15.5 15.5L20 20',
    back: 'M15 5l-7 7 7 7'
  };

  /** @param {keyof typeof ICONS} name @param {string} [cls] */
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

  /** Add the stylesheet to the page unless it is linked already. @param {string} href */
  function ensureStylesheet(href) {
    var abs = new URL(href, location.href).href;
    var links = document.querySelectorAll('link[rel="stylesheet"]');
    for (var i = 0; i < links.length; i++) if (/** @type {HTMLLinkElement} */ (links[i]).href === abs) return;
    var link = el('link', null, null, { rel: 'stylesheet', href: abs, 'data-chatd': '' });
    document.head.appendChild(link);
  }

  /**
   * A blob as a data: URL (image previews: a CSP of `img-src 'self' data:` allows
   * them, where blob: URLs would need `img-src blob:` too).
   * @param {Blob} blob @returns {Promise<string>}
   */
  function dataUrl(blob) {
    return new Promise(function (resolve, reject) {
      var r = new FileReader();
      r.onload = function () { resolve(String(r.result)); };
      r.onerror = function () { reject(r.error); };
      r.readAsDataURL(blob);
    });
  }

  /**
   * A person's avatar: their initials, with their picture over them when the order
   * gave one (an http(s) URL, set as a property, never markup; a picture that does
   * not load leaves the initials).
   * @param {{name: string, avatar_url?: string | null}} person @param {string} role
   */
  function avatar(person, role) {
    var span = el('span', 'chatd-avatar chatd-role-' + role, initials(person.name), { 'aria-hidden': 'true' });
    var url = person.avatar_url;
    if (url && /^https?:\/\//i.test(url)) {
      var img = /** @type {HTMLImageElement} */ (el('img', 'chatd-avatar-img', null, { alt: '', loading: 'lazy' }));
      img.referrerPolicy = 'no-referrer';
      img.addEventListener('error', function () { img.remove(); });
      img.src = url;
      span.appendChild(img);
    }
    return span;
  }

  return {
    avatar: avatar,
    roleLabel: roleLabel, humanize: humanize, firstName: firstName, initials: initials, dayKey: dayKey,
    makeFormatters: makeFormatters, appendLinkified: appendLinkified, formatSize: formatSize,
    el: el, icon: icon, ensureStylesheet: ensureStylesheet, dataUrl: dataUrl, IMAGE_TYPES: IMAGE_TYPES
  };
})();

if (typeof module === 'object' && module && module.exports) module.exports = ChatdDom; // for the type checker
