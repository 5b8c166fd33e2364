// @ts-check
/* Unit tests of web/session.js, the widget's protocol side, in node.
 *
 * The browser's WebSocket and localStorage are replaced by small stand-ins
 * written here (the browser tests in tests/browser/ drive the real ones
 * against a real chatd); time is a manual clock, so nothing waits.
 */
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { Session, wsUrlOf } = require('../session.js');

/** A WebSocket stand-in: records what the session sends; the test plays the server. */
class FakeSocket {
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    /** @type {any[]} */
    this.sent = [];
    /** @type {number | null} */
    this.closedWith = null;
    /** @type {((ev?: any) => void) | null} */ this.onopen = null;
    /** @type {((ev: {data: any}) => void) | null} */ this.onmessage = null;
    /** @type {((ev: {code: number, reason?: string}) => void) | null} */ this.onclose = null;
    /** @type {((ev?: any) => void) | null} */ this.onerror = null;
    FakeSocket.all.push(this);
  }

  /** @param {string} data */
  send(data) {
    assert.equal(this.readyState, 1, 'send on a socket that is not open');
    this.sent.push(JSON.parse(data));
  }

  /** @param {number} [code] */
  close(code) {
    this.readyState = 3;
    this.closedWith = code == null ? 1005 : code;
  }

  // --- the server's side ---
  open() {
    this.readyState = 1;
    if (this.onopen) this.onopen({});
  }

  /** @param {Record<string, any>} frame */
  receive(frame) {
    if (this.onmessage) this.onmessage({ data: JSON.stringify(frame) });
  }

  /** The connection drops (server killed, network gone). @param {number} code */
  drop(code) {
    this.readyState = 3;
    if (this.onclose) this.onclose({ code: code });
  }

  /** @param {string} type */
  framesOf(type) { return this.sent.filter((f) => f.type === type); }
}
/** @type {FakeSocket[]} */
FakeSocket.all = [];

/** A manual clock: timers run only when the test advances time. */
class FakeClock {
  constructor() {
    this.t = 1_700_000_000_000;
    this.nextId = 1;
    /** @type {Map<number, {at: number, fn: () => void}>} */
    this.timers = new Map();
  }
  now() { return this.t; }
  /** @param {() => void} fn @param {number} ms */
  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  /** @param {any} id */
  clearTimeout(id) { this.timers.delete(id); }
  /** Move time on by `ms`, running every timer that falls due, in order. @param {number} ms */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      /** @type {number | null} */
      let nextId = null;
      let at = Infinity;
      for (const [id, tm] of this.timers) if (tm.at <= end && tm.at < at) { nextId = id; at = tm.at; }
      if (nextId === null) break;
      const tm = /** @type {{at: number, fn: () => void}} */ (this.timers.get(nextId));
      this.timers.delete(nextId);
      this.t = Math.max(this.t, tm.at);
      tm.fn();
    }
    this.t = end;
  }
}

/** localStorage as a Map. */
class MemoryStorage {
  constructor() { /** @type {Map<string, string>} */ this.items = new Map(); }
  /** @param {string} k */
  getItem(k) { return this.items.has(k) ? /** @type {string} */ (this.items.get(k)) : null; }
  /** @param {string} k @param {string} v */
  setItem(k, v) { this.items.set(k, String(v)); }
  /** @param {string} k */
  removeItem(k) { this.items.delete(k); }
}

const ORDER = 'o-1';
const BEA = { id: 'bea', name: 'Bea Buyer', role: 'buyer' };
const SAM = { id: 'sam', name: 'Sam Supplier', role: 'supplier' };
const RITA = { id: 'rita', name: 'Rita Rep', role: 'sales_rep' };
const PEOPLE = [{ ...BEA, online: true }, { ...SAM, online: false }];

/** Let the session's promise callbacks (token resolution) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** @param {Partial<import('../session.js').Session['opts']>} [extra] */
function makeSession(extra) {
  FakeSocket.all = [];
  const clock = new FakeClock();
  /** @type {Record<string, any[]>} */
  const events = {};
  const session = new Session({
    url: 'ws://chat.test/ws', order: ORDER, token: 'tok-1',
    WebSocket: FakeSocket, clock, random: () => 0, ...extra
  });
  for (const name of /** @type {const} */ (['state', 'insert', 'message', 'outbox', 'settled', 'unread', 'reset',
    'error', 'joined', 'typing', 'receipt', 'remove'])) {
    events[name] = [];
    session.on(name, (d) => events[name].push(d));
  }
  return { session, clock, events };
}

/** The newest socket, opened and authenticated as `user`. */
async function connect(user = BEA) {
  await settle();
  const ws = FakeSocket.all[FakeSocket.all.length - 1];
  assert.ok(ws, 'the session opened no socket');
  ws.open();
  ws.receive({ type: 'ready', user });
  return ws;
}

/** @param {number} seq @param {Record<string, any>} [extra] */
function msg(seq, extra) {
  return { type: 'message', order: ORDER, seq, ts: 1_700_000_000_000 + seq, kind: 'text', text: 'm' + seq,
           sender: SAM, client_id: null, attachments: [], ...extra };
}

/** @param {number} lastSeq @param {Record<string, any>} [extra] */
function joined(lastSeq, extra) {
  return { type: 'joined', order: ORDER, last_seq: lastSeq, read_seq: 0, unread: 0, participants: PEOPLE,
           status: 'placed', dispute: null, ...extra };
}

test('wsUrlOf maps the base URL to the WebSocket endpoint, keeping a path prefix', () => {
  assert.equal(wsUrlOf('https://chat.example.com'), 'wss://chat.example.com/ws');
  assert.equal(wsUrlOf('http://example.com/chat/'), 'ws://example.com/chat/ws');
  assert.equal(wsUrlOf('/chat', 'https://shop.example/orders/1'), 'wss://shop.example/chat/ws');
});

test('authenticates with the token, then joins without since', async () => {
  const { session } = makeSession();
  session.start();
  const ws = await connect();
  assert.deepEqual(ws.sent, [{ type: 'auth', token: 'tok-1' }, { type: 'join', order: ORDER }]);
  assert.equal(ws.url, 'ws://chat.test/ws');
  session.destroy();
  assert.equal(ws.closedWith, 1000);
});

test('after a reconnect it resumes with since = the highest seq held, with a fresh token', async () => {
  let n = 0;
  const { session, clock, events } = makeSession({ token: () => Promise.resolve('tok-' + (++n)) });
  session.start();
  const ws1 = await connect();
  ws1.receive(joined(3));
  for (const s of [1, 2, 3]) ws1.receive(msg(s));
  ws1.drop(1006);
  assert.equal(session.state, 'reconnecting');
  assert.equal(FakeSocket.all.length, 1, 'reconnects only after the backoff');
  clock.advance(249);
  await settle();
  assert.equal(FakeSocket.all.length, 1);
  clock.advance(1); // 500 ms base, "equal jitter" with random() = 0: 250 ms
  const ws2 = await connect();
  assert.notEqual(ws2, ws1);
  assert.deepEqual(ws2.sent, [{ type: 'auth', token: 'tok-2' }, { type: 'join', order: ORDER, since: 3 }]);
  ws2.receive(joined(3));
  ws2.receive(msg(4)); // after joined, above its last_seq: new
  assert.deepEqual(events.insert.map((e) => [e.message.seq, e.live]), [[1, false], [2, false], [3, false], [4, true]]);
  assert.deepEqual(events.state.map((e) => e.state), ['connecting', 'online', 'reconnecting', 'reconnecting', 'online']);
  session.destroy();
});

test('a silent server is detected: ping after 20 s, reconnect after 35 s', async () => {
  const { session, clock } = makeSession();
  session.start();
  const ws1 = await connect();
  ws1.receive(joined(0));
  clock.advance(25_000);
  assert.equal(ws1.framesOf('ping').length, 1);
  clock.advance(15_000);
  assert.equal(ws1.closedWith, 4000);
  assert.equal(session.state, 'reconnecting');
  clock.advance(250);
  const ws2 = await connect();
  assert.deepEqual(ws2.framesOf('join'), [{ type: 'join', order: ORDER, since: 0 }]);
  session.destroy();
});

test('dedup: frames replayed after a resume, and history overlapping what is held, are dropped by seq', async () => {
  const { session, clock, events } = makeSession();
  session.start();
  const ws1 = await connect();
  ws1.receive(joined(3));
  for (const s of [1, 2, 3]) ws1.receive(msg(s));
  ws1.drop(1006);
  clock.advance(250);
  const ws2 = await connect();
  ws2.receive(joined(5));
  for (const s of [2, 3, 4, 5, 5]) ws2.receive(msg(s)); // the server replays more than asked
  ws2.receive({ type: 'history', order: ORDER, messages: [msg(1), msg(2)], has_more: false });
  assert.deepEqual(events.insert.map((e) => e.message.seq), [1, 2, 3, 4, 5]);
  assert.deepEqual(events.message.map((e) => e.message.seq), [1, 2, 3, 4, 5]);
  assert.deepEqual([...session.msgs.keys()], [1, 2, 3, 4, 5]);
  assert.equal(session.oldestSeq, 1);
  assert.equal(session.newestSeq, 5);
  session.destroy();
});

test('dedup: a truncated resume starts over, so the replayed page is shown again', async () => {
  const { session, clock, events } = makeSession();
  session.start();
  const ws1 = await connect();
  ws1.receive(joined(2));
  ws1.receive(msg(1));
  ws1.receive(msg(2));
  ws1.drop(1006);
  clock.advance(250);
  const ws2 = await connect();
  ws2.receive(joined(300, { truncated: true }));
  ws2.receive(msg(299));
  ws2.receive(msg(300));
  assert.equal(events.reset.length, 1);
  assert.deepEqual([...session.msgs.keys()], [299, 300]);
  assert.equal(session.oldestSeq, 299);
  assert.ok(session.canLoadMore());
  session.destroy();
});

test('outbox: a message typed offline is sent on join, again after a lost ack, with one client_id, stored once', async () => {
  const storage = new MemoryStorage();
  const { session, clock, events } = makeSession({ storage });
  session.start();
  const cid = session.send('  hello  ');
  assert.ok(cid);
  assert.equal(session.outbox.get(cid)?.state, 'queued');
  const ws1 = await connect();
  assert.equal(ws1.framesOf('send').length, 0, 'not before joined');
  const key = 'chatd:outbox:v1:ws://chat.test/ws:' + ORDER + ':bea';
  assert.deepEqual(JSON.parse(storage.getItem(key) || 'null').map((/** @type {any} */ i) => i.client_id), [cid]);
  ws1.receive(joined(0));
  assert.deepEqual(ws1.framesOf('send'), [{ type: 'send', order: ORDER, client_id: cid, text: 'hello', kind: 'text' }]);
  assert.equal(session.outbox.get(cid)?.state, 'sending');

  ws1.drop(1006); // the ack is lost
  clock.advance(250);
  const ws2 = await connect();
  ws2.receive(joined(1));
  assert.deepEqual(ws2.framesOf('send').map((f) => f.client_id), [cid], 'sent again with the same client_id');
  ws2.receive({ type: 'ack', order: ORDER, client_id: cid, seq: 1, ts: clock.now(), duplicate: true });
  assert.equal(session.outbox.size, 0);
  assert.equal(storage.getItem(key), null, 'acknowledged: no longer kept');
  ws2.receive(msg(1, { sender: BEA, client_id: cid, text: 'hello' })); // its echo
  assert.deepEqual(events.insert.map((e) => [e.message.seq, e.source]), [[1, 'ack']], 'held once');
  assert.deepEqual(events.settled.map((e) => e.item.client_id), [cid]);

  clock.advance(60_000); // nothing left to retry
  assert.equal(ws2.framesOf('send').length, 1);
  session.destroy();
});

test('outbox: an unacknowledged message survives a reload and is resent with its client_id', async () => {
  const storage = new MemoryStorage();
  const first = makeSession({ storage });
  first.session.start();
  const ws1 = await connect();
  ws1.receive(joined(0));
  const cid = first.session.send('typed before the reload', {
    attachments: [{ id: 'att-1', name: 'photo.png', mime: 'image/png', size: 10 }]
  });
  first.session.destroy(); // the page goes away before the ack

  const second = makeSession({ storage });
  second.session.start();
  const ws2 = await connect();
  assert.deepEqual([...second.session.outbox.keys()], [cid]);
  assert.deepEqual(second.events.outbox.map((e) => [e.item.client_id, e.added]), [[cid, true]]);
  ws2.receive(joined(0));
  assert.deepEqual(ws2.framesOf('send'), [{ type: 'send', order: ORDER, client_id: cid, text: 'typed before the reload',
                                            kind: 'text', attachments: ['att-1'] }]);
  second.session.destroy();
});

test('outbox: rate_limited is retried later with the same client_id; a refusal fails until Retry', async () => {
  const storage = new MemoryStorage();
  const { session, clock } = makeSession({ storage });
  session.start();
  const ws = await connect();
  ws.receive(joined(0));
  const a = /** @type {string} */ (session.send('first'));
  ws.receive({ type: 'error', order: ORDER, code: 'rate_limited', message: 'slow down', ref: a });
  assert.equal(session.outbox.get(a)?.state, 'queued');
  clock.advance(2_999);
  assert.equal(ws.framesOf('send').length, 1);
  clock.advance(1);
  assert.deepEqual(ws.framesOf('send').map((f) => f.client_id), [a, a]);

  const b = /** @type {string} */ (session.send('x'.repeat(10)));
  ws.receive({ type: 'error', order: ORDER, code: 'too_large', message: 'too large', ref: b });
  assert.equal(session.outbox.get(b)?.state, 'failed');
  assert.equal(session.outbox.get(b)?.error, 'too large');
  clock.advance(10_000); // a failed message is not retried on its own ...
  assert.deepEqual(ws.framesOf('send').map((f) => f.client_id), [a, a, b]);
  session.retry(b); // ... only when the user says so
  assert.deepEqual(ws.framesOf('send').map((f) => f.client_id), [a, a, b, b]);
  session.discard(b);
  assert.deepEqual([...session.outbox.keys()], [a]);
  session.destroy();
});

test('send refuses empty and too long text, and notes from a buyer', async () => {
  const { session } = makeSession({ maxLength: 5 });
  session.start();
  const ws = await connect();
  ws.receive(joined(0));
  assert.equal(session.send('   '), null);
  assert.equal(session.send('123456'), null);
  session.send('hi', { note: true });
  assert.deepEqual(ws.framesOf('send').map((f) => f.kind), ['text'], 'a buyer cannot write notes');
  session.destroy();
});

test('a role change to buyer seen on resume drops the notes held and the unsent notes', async () => {
  const storage = new MemoryStorage();
  const { session, clock, events } = makeSession({ storage });
  session.start();
  const ws1 = await connect(RITA);
  ws1.receive(joined(2));
  ws1.receive(msg(1, { kind: 'note', text: 'INTERNAL: margin is 40%' }));
  ws1.receive(msg(2));
  assert.equal(session.role, 'sales_rep');
  ws1.drop(1006);
  const note = /** @type {string} */ (session.send('also internal', { note: true })); // typed offline
  assert.equal(session.outbox.get(note)?.kind, 'note');
  clock.advance(250);
  // Meanwhile the platform made Rita the order's buyer; she resumes with since = 2.
  const ws2 = await connect(RITA);
  ws2.receive(joined(2, { participants: [{ ...RITA, role: 'buyer', online: true }, { ...SAM, online: false }] }));
  assert.equal(session.role, 'buyer');
  assert.deepEqual([...session.msgs.values()].map((m) => m.text), ['m2'], 'a buyer holds no note');
  assert.deepEqual(events.remove, [{ seqs: [1] }]);
  assert.equal(ws2.framesOf('send').length, 0, 'a note is not sent as the buyer');
  assert.equal(session.outbox.size, 0);
  assert.equal(storage.items.size, 0, 'nor kept for the next visit');
  assert.deepEqual(events.error.at(-1), { code: 'forbidden', message: 'your role on this order no longer writes notes',
                                          ref: note, action: 'note' });
  session.destroy();
});

test('a note left unsent in storage by the old role is dropped when the new one joins as buyer', async () => {
  const storage = new MemoryStorage();
  const first = makeSession({ storage });
  first.session.start();
  const ws1 = await connect(RITA);
  ws1.receive(joined(0, { participants: [{ ...RITA, online: true }, { ...SAM, online: false }] }));
  ws1.drop(1006);
  const note = first.session.send('internal, typed offline', { note: true });
  const text = first.session.send('public, typed offline');
  first.session.destroy(); // the page goes away before the acks

  const second = makeSession({ storage });
  second.session.start();
  const ws2 = await connect(RITA);
  assert.deepEqual([...second.session.outbox.keys()], [note, text]);
  ws2.receive(joined(0, { participants: [{ ...RITA, role: 'buyer', online: true }, { ...SAM, online: false }] }));
  assert.deepEqual(ws2.framesOf('send').map((f) => [f.client_id, f.kind]), [[text, 'text']]);
  assert.deepEqual(second.events.settled.map((e) => e.item.client_id), [note]);
  assert.deepEqual(JSON.parse(/** @type {string} */ ([...storage.items.values()][0])).map((/** @type {any} */ i) => i.client_id), [text]);
  second.session.destroy();
});

test('unread: counts come from joined and unread frames; read is debounced, once per new seq, only while seen', async () => {
  let visible = true;
  const { session, clock, events } = makeSession({ canRead: () => visible });
  session.start();
  const ws = await connect();
  ws.receive(joined(5, { read_seq: 3, unread: 2 }));
  assert.deepEqual(events.unread.at(-1), { count: 2, total: null });
  assert.deepEqual(events.joined[0], { first: true, unread: 2, readSeq: 3, lastSeq: 5 });
  ws.receive({ type: 'unread', order: ORDER, count: 3, total: 7 });
  assert.deepEqual(events.unread.at(-1), { count: 3, total: 7 });
  ws.receive({ type: 'unread', order: ORDER, count: -1 });
  assert.equal(session.unread, 0, 'never below zero');

  session.read(2); // at or below the marker: nothing to say
  clock.advance(1_000);
  assert.equal(ws.framesOf('read').length, 0);

  session.read(4);
  session.read(5);
  clock.advance(249);
  assert.equal(ws.framesOf('read').length, 0);
  clock.advance(1);
  assert.deepEqual(ws.framesOf('read'), [{ type: 'read', order: ORDER, seq: 5 }], 'one read, with the newest seq');
  session.read(5);
  clock.advance(1_000);
  assert.equal(ws.framesOf('read').length, 1);

  ws.receive({ type: 'message', order: ORDER, seq: 6, ts: 6, kind: 'text', text: 'm6', sender: SAM });
  ws.receive({ type: 'message', order: ORDER, seq: 7, ts: 7, kind: 'text', text: 'm7', sender: SAM });
  session.read(7); // on screen a moment ...
  session.read(5); // ... then scrolled away before the debounce: not read
  clock.advance(1_000);
  assert.equal(ws.framesOf('read').length, 1);
  session.read(6);
  clock.advance(250);
  assert.deepEqual(ws.framesOf('read').at(-1), { type: 'read', order: ORDER, seq: 6 });

  visible = false; // a background tab reads nothing
  session.read(7);
  clock.advance(1_000);
  assert.equal(ws.framesOf('read').length, 2);

  // Our own receipt (another tab) and our own ack move the marker too.
  ws.receive({ type: 'receipt', order: ORDER, user: 'bea', seq: 8 });
  ws.receive({ type: 'ack', order: ORDER, client_id: 'unknown', seq: 9, ts: 1 });
  assert.equal(session.readSeq, 9);
  visible = true;
  session.read(9);
  clock.advance(1_000);
  assert.equal(ws.framesOf('read').length, 2);

  ws.receive({ type: 'receipt', order: ORDER, user: 'sam', seq: 4 });
  ws.receive({ type: 'receipt', order: ORDER, user: 'sam', seq: 2 }); // older: ignored
  assert.deepEqual(events.receipt, [{ user: 'sam', seq: 4 }]);
  session.destroy();
});

test('unread: a read written to a socket that then died is sent again after the resume', async () => {
  const { session, clock } = makeSession();
  session.start();
  const ws1 = await connect();
  ws1.receive(joined(5, { read_seq: 3, unread: 2 }));
  for (const s of [1, 2, 3, 4, 5]) ws1.receive(msg(s));
  session.read(5);
  clock.advance(250);
  assert.deepEqual(ws1.framesOf('read'), [{ type: 'read', order: ORDER, seq: 5 }]); // written ...
  ws1.drop(1006); // ... but the socket died before the server got it
  clock.advance(250);
  const ws2 = await connect();
  ws2.receive(joined(5, { read_seq: 3, unread: 2 })); // the server's marker is still at 3
  assert.equal(session.readSeq, 3, 'the marker follows the server after a resume');
  assert.equal(session.unread, 2);
  session.read(5); // messages 4 and 5 are still on screen
  clock.advance(1_000);
  assert.deepEqual(ws2.framesOf('read'), [{ type: 'read', order: ORDER, seq: 5 }]);
  session.destroy();
});

test('live messages from others are flagged live; replayed ones are not', async () => {
  const { session, events } = makeSession();
  session.start();
  const ws = await connect();
  ws.receive(joined(2));
  ws.receive(msg(1));
  ws.receive(msg(2));
  ws.receive({ type: 'typing', order: ORDER, user: SAM, active: true });
  assert.deepEqual(events.typing.at(-1), { names: ['Sam Supplier'] });
  ws.receive(msg(3));
  assert.deepEqual(events.message.map((e) => e.live), [false, false, true]);
  assert.deepEqual(events.typing.at(-1), { names: [] }, 'a message ends its sender\'s typing');
  session.destroy();
});

test('an expired token (4401) is retried once with a new one, then the chat closes', async () => {
  let n = 0;
  const { session, clock, events } = makeSession({ token: () => 'tok-' + (++n) });
  session.start();
  const ws1 = await connect();
  ws1.drop(4401);
  clock.advance(250);
  await settle();
  const ws2 = FakeSocket.all[1];
  ws2.open();
  assert.deepEqual(ws2.sent, [{ type: 'auth', token: 'tok-2' }]);
  ws2.drop(4401);
  assert.equal(session.state, 'closed');
  assert.equal(events.error.at(-1).code, 'unauthorized');
  assert.equal(events.error.at(-1).fatal, true);
  clock.advance(60_000);
  await settle();
  assert.equal(FakeSocket.all.length, 2, 'no reconnect after a fatal close');
  assert.equal(session.send('too late'), null);
});

test('removed from the order: closed for good', async () => {
  const { session, clock } = makeSession();
  session.start();
  const ws = await connect();
  ws.receive(joined(0));
  ws.receive({ type: 'left', order: ORDER, reason: 'removed' });
  assert.equal(session.state, 'closed');
  assert.equal(session.fatal, 'removed');
  assert.equal(ws.closedWith, 1000);
  clock.advance(60_000);
  await settle();
  assert.equal(FakeSocket.all.length, 1);
});

test('a passing error answering join (store unavailable, rate_limited) is retried; not_found closes the chat', async () => {
  const { session, clock, events } = makeSession();
  session.start();
  const ws = await connect();
  ws.receive({ type: 'error', code: 'unavailable', message: 'database unavailable: connection refused', ref: ORDER });
  assert.equal(session.state, 'connecting', 'still trying, not closed for good');
  assert.equal(session.fatal, null);
  assert.equal(events.error.at(-1).fatal, undefined);
  clock.advance(500); // the backoff: 0.25 s with this jitter
  assert.equal(ws.framesOf('join').length, 2, 'the join is asked again on the same socket');
  ws.receive({ type: 'error', code: 'rate_limited', message: 'too many reads', ref: ORDER });
  clock.advance(1_000);
  assert.equal(ws.framesOf('join').length, 3);
  ws.receive(joined(0));
  assert.equal(session.state, 'online');
  assert.equal(session.attempt, 0);

  ws.drop(1006); // a resume refused as a passing fault keeps saying "reconnecting"
  clock.advance(250);
  const ws2 = await connect();
  ws2.receive({ type: 'error', code: 'internal', message: 'boom', ref: ORDER });
  assert.equal(session.state, 'reconnecting');
  clock.advance(500);
  assert.deepEqual(ws2.framesOf('join'), [{ type: 'join', order: ORDER, since: 0 }, { type: 'join', order: ORDER, since: 0 }]);
  ws2.receive({ type: 'error', code: 'not_found', message: 'no such order', ref: ORDER });
  assert.equal(session.state, 'closed');
  assert.equal(session.fatal, 'not_found');
  assert.equal(events.error.at(-1).message, 'This order’s chat is not available.');
  clock.advance(60_000);
  await settle();
  assert.equal(ws2.framesOf('join').length, 2);
  assert.equal(FakeSocket.all.length, 2);
});

test('frames for another order are ignored', async () => {
  const { session, events } = makeSession();
  session.start();
  const ws = await connect();
  ws.receive(joined(0));
  ws.receive(msg(1, { order: 'o-2' }));
  ws.receive({ type: 'unread', order: 'o-2', count: 4 });
  assert.equal(events.insert.length, 0);
  assert.equal(session.unread, 0);
  session.destroy();
});

test('order state: labels, tones, next statuses, closed and what the role may do', async () => {
  const { session } = makeSession();
  session.start();
  const ws = await connect();
  ws.receive(joined(3, {
    workflow: 'factory', status: 'shipped', status_label: 'Shipped', status_tone: 'progress',
    next_statuses: [{ status: 'delivered', label: 'Delivered', tone: 'success' }], closed: false
  }));
  assert.equal(session.statusLabel, 'Shipped');
  assert.equal(session.statusTone, 'progress');
  assert.deepEqual(session.nextStatuses, [{ status: 'delivered', label: 'Delivered', tone: 'success' }]);
  assert.equal(session.mayConfirmReceipt(), true);
  assert.equal(session.mayOpenDispute(), true);
  assert.equal(session.mayCloseDispute(), false);
  assert.equal(session.mayMarkNoReply(), false, 'a buyer never');
  ws.receive({ type: 'order', order: ORDER, status: 'shipped', dispute: { open: true, reason: 'x', by: 'bea', ts: 1 } });
  assert.equal(session.mayOpenDispute(), false);
  assert.equal(session.mayCloseDispute(), true, 'the opener closes');
  ws.receive({ type: 'order', order: ORDER, status: 'completed', dispute: null, closed: true, closed_reason: 'completed' });
  assert.equal(session.mayPost(), false);
  assert.equal(session.mayOpenDispute(), true, 'a buyer may always open a dispute: it reopens the chat');
  assert.equal(session.mayAskHelp(), false);
  assert.equal(session.closedReason, 'completed');
  assert.deepEqual(session.nextStatuses, []);
  session.destroy();
});

test('a refused action comes back as an error naming the action; an ack settles it', async () => {
  const { session, events } = makeSession();
  session.start();
  const ws = await connect(SAM);
  ws.receive(joined(0));
  assert.equal(session.closeDispute('done'), true);
  const frame = ws.framesOf('dispute').at(-1);
  ws.receive({ type: 'error', code: 'forbidden', message: 'only staff or the opener may close it', ref: frame.client_id });
  assert.deepEqual(events.error.at(-1), {
    code: 'forbidden', message: 'only staff or the opener may close it', ref: frame.client_id, action: 'dispute_close'
  });
  session.setStatus('packed');
  const st = ws.framesOf('set_status').at(-1);
  ws.receive({ type: 'ack', order: ORDER, client_id: st.client_id, seq: 1, ts: 1, duplicate: false });
  assert.equal(session.actions.size, 0);
  session.destroy();
});

test('no reply needed: the newest buyer message while the buyer waits; reply_state ends it', async () => {
  const { session } = makeSession();
  session.start();
  const ws = await connect(SAM);
  ws.receive(joined(2, { awaiting_reply: { seq: 1, since: 1, due_at: 2, overdue: false } }));
  ws.receive(msg(1, { sender: BEA }));
  ws.receive(msg(2, { sender: BEA }));
  assert.equal(session.mayMarkNoReply(), true);
  assert.equal(session.noReplySeq(), 2);
  session.noReplyNeeded(/** @type {number} */ (session.noReplySeq()));
  assert.deepEqual(ws.framesOf('no_reply_needed').at(-1), { type: 'no_reply_needed', order: ORDER, seq: 2 });
  ws.receive({ type: 'reply_state', order: ORDER, awaiting_reply: null });
  assert.equal(session.mayMarkNoReply(), false);
  session.destroy();
});

test('receipts come back with joined, so "Seen by" survives a reload', async () => {
  const { session, events } = makeSession();
  session.start();
  const ws = await connect();
  ws.receive(joined(5, { receipts: [{ user: 'sam', seq: 4 }, { user: 'bea', seq: 5 }] }));
  assert.deepEqual([...session.receipts], [['sam', 4]], 'one\'s own marker is not a receipt');
  assert.deepEqual(events.receipt, [{ user: 'sam', seq: 4 }]);
  session.destroy();
});

test('a token the server refuses for another reason than expiry is not called expired', async () => {
  const { session, events } = makeSession();
  session.start();
  await settle();
  const ws = FakeSocket.all[0];
  ws.open();
  ws.receive({ type: 'error', code: 'unauthorized', message: 'invalid token: Signature verification failed' });
  ws.drop(4401);
  assert.equal(session.state, 'closed');
  assert.equal(events.error.at(-1).fatal, true);
  assert.match(events.error.at(-1).message, /token is not valid/);
  assert.doesNotMatch(events.error.at(-1).message, /expired/);
});

test('typing a note says so, and a switch between a note and a message is sent at once', async () => {
  const { session, clock } = makeSession();
  session.start();
  const ws = await connect();
  ws.receive(joined(0));
  session.typing(true);
  session.typing(true); // a refresh only after a while
  session.typing(false); // a message now: the server must know at once
  clock.advance(100);
  session.typing(false);
  session.stopTyping();
  assert.deepEqual(ws.framesOf('typing'), [
    { type: 'typing', order: ORDER, active: true, note: true },
    { type: 'typing', order: ORDER, active: true },
    { type: 'typing', order: ORDER, active: false },
  ]);
  session.destroy();
});
