/**
 * Core against a real Synapse: the bridge runs in this process with two test networks
 * (test/harness/test-network.ts) playing the remote side; real Matrix users talk through Synapse.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEverything, TrestleBridge, createLogger } from '@trestle/core';
import type { TestNetwork } from '../harness/test-network.js';
import { MatrixUser, messagesOf, type MatrixEventJson } from '../harness/matrix-user.js';
import { e2e, until } from './env.js';

let bridge: TrestleBridge;
let testa: TestNetwork;
let testb: TestNetwork;
let alice: MatrixUser;
let bob: MatrixUser;
let botId: string;
let asUrl: string;

const body = (e: MatrixEventJson): unknown => e.content['body'];

async function linkedRoom(chats: [string, string][]): Promise<string> {
  const roomId = await alice.createRoom({ name: `room ${chats.map((c) => c.join(':')).join(' ')}` });
  await alice.invite(roomId, botId);
  await until(async () => (await alice.joinedMembers(roomId)).includes(botId), 'the bot to join');
  for (const [net, chat] of chats) {
    await alice.sendText(roomId, `!trestle link ${net} ${chat}`);
    await alice.waitForEvent(roomId, (e) => e.sender === botId && String(body(e)).startsWith(`Linked this room to ${net} ${chat}`));
  }
  return roomId;
}

/** The bridge with the two test networks (again after a stop: the networks are new, the store is the same). */
async function start(): Promise<void> {
  const { config, modules } = await loadEverything(e2e.config);
  const networks = [...modules].map(([id, m]) => m.create((config.networks as Record<string, unknown>)[id], id));
  bridge = new TrestleBridge(config, networks, { log: createLogger({ level: config.logging.level, format: 'pretty' }) });
  await bridge.start();
  testa = bridge.networks.get('testa') as unknown as TestNetwork;
  testb = bridge.networks.get('testb') as unknown as TestNetwork;
  botId = bridge.matrix.botUserId;
  asUrl = `http://127.0.0.1:${bridge.address()!.port}`;
}

beforeAll(async () => {
  await start();
  alice = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `alice${Date.now()}`, { displayName: 'Alice Liddell' });
  bob = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `bob${Date.now()}`, { displayName: 'Bob' });
});

afterAll(async () => {
  await bridge?.stop();
});

describe('appservice API', () => {
  it('stops although a client holds a request open (a transaction stalled mid-body)', async () => {
    const { hs_token } = e2e.registration();
    const sock = connect(bridge.address()!.port, '127.0.0.1');
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.on('error', () => undefined);
    const cut = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    // a transaction whose body never comes in full: the request stays in flight
    sock.write(`PUT /_matrix/app/v1/transactions/stalled-${Date.now()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${hs_token}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"events":[');
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    // without a cut the stop waits for that request: for node's requestTimeout (5 minutes) at best
    await Promise.race([bridge.stop(), new Promise((_, reject) => setTimeout(() => reject(new Error('the stop waited for the stalled request')), 30_000))]);
    expect(Date.now() - t0).toBeLessThan(30_000);
    await cut; // its connection was closed, not left open
    await start();
  }, 60_000);

  it('refuses a wrong or missing hs_token with 403 M_FORBIDDEN and processes nothing', async () => {
    // forged into a linked room, as a member of it: with the right token this event would be bridged
    // (the hostile-types test below sends its kind that way), so only the token check keeps it out
    const roomId = await linkedRoom([['testa', 'forged']]);
    const event = {
      type: 'm.room.message', room_id: roomId, sender: alice.userId, event_id: `$forged-${Date.now()}`, origin_server_ts: Date.now(),
      content: { msgtype: 'm.text', body: 'forged' },
    };
    const rejected = async (): Promise<number> =>
      (await bridge.metrics.transactions.get()).values.find((v) => v.labels['outcome'] === 'rejected')?.value ?? 0;
    const rejectedBefore = await rejected();
    for (const auth of ['Bearer wrong-token', undefined]) {
      const res = await fetch(`${asUrl}/_matrix/app/v1/transactions/forged-${auth ? 1 : 2}`, {
        method: 'PUT', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify({ events: [event] }),
      });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { errcode: string }).errcode).toBe('M_FORBIDDEN');
    }
    // both counted as refused, not as taken ("ok" is not pinned: Synapse's own transactions come in meanwhile)
    expect(await rejected()).toBe(rejectedBefore + 2);
    // a real message after them, in the same room: its queue would have delivered a stored forgery first
    const marker = await alice.sendText(roomId, 'after the forgeries');
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === marker);
    expect(testa.received.filter((r) => r.kind === 'message' && r.msg.portal.remoteChat === 'forged').map((r) => r.kind === 'message' && r.msg.eventId)).toEqual([marker]);
  });

  it('answers the ping, /health and the express-built routes (user queries) alike', async () => {
    // ping and /health are served before express is loaded; user queries load it at their first request
    const { hs_token } = e2e.registration();
    const ping = (auth?: string): Promise<Response> => fetch(`${asUrl}/_matrix/app/v1/ping`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify({ transaction_id: 'p1' }),
    });
    const ok = await ping(`Bearer ${hs_token}`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({});
    for (const auth of ['Bearer wrong-token', undefined]) {
      const refused = await ping(auth);
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { errcode: string }).errcode).toBe('M_FORBIDDEN');
    }
    // the homeserver's own ping goes through the same path: Synapse pings the registration's url (this
    // bridge) and answers 200 only when that answered 2xx (a 403 from us is its 502 M_BAD_STATUS)
    expect(new URL(e2e.registration().url).port).toBe(String(bridge.address()!.port));
    const hsPing = await fetch(`${e2e.synapseUrl}/_matrix/client/v1/appservice/${encodeURIComponent(bridge.config.appservice.id)}/ping`, {
      method: 'POST', headers: { authorization: `Bearer ${e2e.registration().as_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ transaction_id: 'p2' }),
    });
    expect(hsPing.status).toBe(200);
    expect(await hsPing.json()).toEqual({ duration_ms: expect.any(Number) });
    // and the bridge's own call of it resolves, where a refusal rejects rather than passing for a ping
    await expect(bridge.matrix.ping(bridge.config.appservice.id)).resolves.toEqual(expect.any(Number));
    await expect(bridge.matrix.ping('not-this-appservice')).rejects.toThrow(/M_FORBIDDEN/);
    const head = await fetch(`${asUrl}/health`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const health = (await (await fetch(`${asUrl}/health`)).json()) as { status: string; networks: string[]; queueDepth: number };
    expect(health).toMatchObject({ status: 'ok', networks: expect.arrayContaining(['testa', 'testb']) });
    expect(typeof health.queueDepth).toBe('number');
    const stranger = await fetch(`${asUrl}/_matrix/app/v1/users/${encodeURIComponent('@not_in_any_namespace:localhost')}`, { headers: { authorization: `Bearer ${hs_token}` } });
    expect(stranger.status).toBe(404);
    expect(((await stranger.json()) as { errcode: string }).errcode).toBe('M_NOT_FOUND');
    const unauthorised = await fetch(`${asUrl}/_matrix/app/v1/users/${encodeURIComponent('@x:localhost')}`);
    expect(unauthorised.status).toBe(403);
  });

  it('answers malformed bodies with 400 and a reason, and keeps running', async () => {
    const { hs_token } = e2e.registration();
    const put = (txn: string, text: string): Promise<Response> => fetch(`${asUrl}/_matrix/app/v1/transactions/${txn}`, {
      method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${hs_token}` }, body: text,
    });
    const notJson = await put('bad-1', '{"events": [');
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: string }).error).toMatch(/Malformed JSON/);
    const noEvents = await put('bad-2', '{"events": "nope"}');
    expect(noEvents.status).toBe(400);
    expect(((await noEvents.json()) as { error: string }).error).toMatch(/"events" array/);
    const badId = await put('bad%E0%A4%A', '{"events": []}'); // not valid percent-encoding
    expect(badId.status).toBe(400);
    expect(((await badId.json()) as { error: string }).error).toMatch(/transaction id/);
    const health = await fetch(`${asUrl}/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe('ok');
  });

  it('takes events whose fields have the wrong types without stalling the room: the message after them arrives at once', async () => {
    // A homeserver checks little of an event's content: any JSON a client sends is passed on. A
    // handler that threw on one would retry it at the head of the room's queue for about a minute
    // (8 attempts), holding back everything said after it.
    const roomId = await linkedRoom([['testa', 'hostile-types']]);
    const { hs_token } = e2e.registration();
    let n = 0;
    const ev = (type: string, content: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> =>
      ({ type, room_id: roomId, sender: alice.userId, event_id: `$hostile-${Date.now()}-${n++}`, origin_server_ts: Date.now(), content, ...extra });
    const events = [
      ev('m.room.message', { msgtype: 'm.text', body: 12345 }),
      ev('m.room.message', { msgtype: ['m.text'], body: 'an array msgtype', format: 7, formatted_body: { b: 1 } }),
      ev('m.room.message', { msgtype: 'm.text', body: '* edit', 'm.new_content': 'text', 'm.relates_to': { rel_type: 'm.replace', event_id: 42 } }),
      ev('m.room.message', { msgtype: 'm.text', body: 'reply', 'm.relates_to': { 'm.in_reply_to': 'not an object' } }),
      ev('m.room.message', { msgtype: 'm.text', body: 'thread', 'm.relates_to': { rel_type: 'm.thread', event_id: ['x'], is_falling_back: 'yes' } }),
      ev('m.room.message', { msgtype: 'm.image', body: 'image', url: 7, info: 'big' }),
      ev('m.room.message', { msgtype: 'm.image', body: 'image', url: 'mxc://', info: { size: 'huge', mimetype: 5 } }),
      ev('m.room.message', { msgtype: 'm.location', body: 'here', geo_uri: { lat: 1 }, 'm.location': 'x' }),
      ev('m.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: 5, key: ['👍'] } }),
      ev('m.room.redaction', { redacts: [] }, { redacts: 5 }),
      ev('org.matrix.msc3381.poll.start', { 'org.matrix.msc3381.poll.start': { question: 5, answers: 'yes' } }),
      ev('m.room.member', { membership: 7, displayname: ['x'] }, { state_key: alice.userId }),
      ev('m.room.member', { membership: 'invite' }, { state_key: 5 }),
      ev('m.room.message', { msgtype: 'm.text', body: 'unsigned that is not an object' }, { unsigned: 'x' }),
      ev('m.room.message', 'content that is a string'),
      { type: 'm.room.message', content: { body: 'no room, sender or id' } },
      ev('m.room.message', { msgtype: 'm.text', body: 'after the hostile ones' }),
    ];
    // (counted bridge-wide: no test before this one in the file fails a delivery)
    const failures = async (): Promise<number> => (await bridge.metrics.sendFailures.get()).values.reduce((a, v) => a + v.value, 0);
    const failedBefore = await failures();
    const res = await fetch(`${asUrl}/_matrix/app/v1/transactions/hostile-${Date.now()}`, {
      method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${hs_token}` }, body: JSON.stringify({ events }),
    });
    expect(res.status).toBe(200);
    await testa.waitFor((r) => r.kind === 'message' && r.msg.body === 'after the hostile ones', 3_000);
    // none of them failed a delivery: each was bridged or set aside, none thrown on and retried
    // (with the default 8 attempts, a throw holds the room back for about a minute)
    expect(await failures()).toBe(failedBefore);
    // what reached the network kept its types: strings where strings are promised
    for (const r of testa.received.filter((x) => x.kind === 'message' && x.msg.portal.roomId === roomId)) {
      if (r.kind !== 'message') continue;
      expect(typeof r.msg.body).toBe('string');
      expect(typeof r.msg.msgtype).toBe('string');
      if (r.msg.formattedBody !== undefined) expect(typeof r.msg.formattedBody).toBe('string');
    }
    expect((await fetch(`${asUrl}/health`)).status).toBe(200);
  });

  it('processes a replayed transaction id once, even when the homeserver resends it', async () => {
    const roomId = await linkedRoom([['testa', 'replay']]);
    const { hs_token } = e2e.registration();
    const event = {
      type: 'm.room.message', room_id: roomId, sender: alice.userId, event_id: `$replay-${Date.now()}`, origin_server_ts: Date.now(),
      content: { msgtype: 'm.text', body: 'sent twice by the homeserver' },
    };
    const txnId = `replay-${Date.now()}`;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${asUrl}/_matrix/app/v1/transactions/${txnId}`, {
        method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${hs_token}` }, body: JSON.stringify({ events: [event] }),
      });
      expect(res.status).toBe(200);
    }
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === event.event_id);
    // a later message in the same room arriving proves the queue moved past the replay
    const later = await alice.sendText(roomId, 'after the replay');
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === later);
    expect(testa.received.filter((r) => r.kind === 'message' && r.msg.eventId === event.event_id)).toHaveLength(1);
  });

  it('ignores a replayed transaction by its id and events, but takes a reused id with new events (Synapse on SQLite restarted)', async () => {
    // Event ids are de-duplicated too, so the transaction check on its own shows in the count of
    // transactions answered as duplicates. Synapse on SQLite numbers transactions from 1 again
    // after it restarts: an id seen before that brings an event never seen must be processed.
    const roomId = await linkedRoom([['testa', 'replay-id']]);
    const { hs_token } = e2e.registration();
    const txnId = `replay-id-${Date.now()}`;
    const put = (eventId: string, body: string): Promise<Response> => fetch(`${asUrl}/_matrix/app/v1/transactions/${txnId}`, {
      method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${hs_token}` },
      body: JSON.stringify({ events: [{ type: 'm.room.message', room_id: roomId, sender: alice.userId, event_id: eventId, origin_server_ts: Date.now(), content: { msgtype: 'm.text', body } }] }),
    });
    const duplicates = async (): Promise<number> =>
      (await bridge.metrics.transactions.get()).values.find((v) => v.labels['outcome'] === 'duplicate')?.value ?? 0;
    const before = await duplicates();
    const first = `$first-${Date.now()}`, second = `$second-${Date.now()}`;
    expect((await put(first, 'first use of the id')).status).toBe(200);
    expect((await put(first, 'first use of the id')).status).toBe(200); // the homeserver retrying it
    expect(await duplicates()).toBe(before + 1);
    expect((await put(second, 'the id again, with a new event')).status).toBe(200);
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === second);
    expect(testa.received.filter((r) => r.kind === 'message' && r.msg.eventId === first)).toHaveLength(1);
    expect(await duplicates()).toBe(before + 1);
  });
});

describe('messages both ways', () => {
  it('delivers a Matrix message to the network with sender, body and formatted body', async () => {
    const roomId = await linkedRoom([['testa', 'chan-1']]);
    const eventId = await alice.sendText(roomId, 'hello **world**', { format: 'org.matrix.custom.html', formatted_body: 'hello <b>world</b>' });
    const r = await testa.waitFor((x) => x.kind === 'message' && x.msg.eventId === eventId);
    if (r.kind !== 'message') throw new Error('unreachable');
    expect(r.msg.portal).toEqual({ roomId, remoteChat: 'chan-1', kind: 'plumbed' });
    expect(r.msg.sender.userId).toBe(alice.userId);
    expect(r.msg.sender.displayName).toBe('Alice Liddell');
    expect(r.msg.body).toBe('hello **world**');
    expect(r.msg.formattedBody).toBe('hello <b>world</b>');
    expect(testa.connectedUsers.has(alice.userId)).toBe(true);
  });

  it('delivers a message whose sender has a name too long for Matrix, under the name cut short', async () => {
    const roomId = await linkedRoom([['testa', 'chan-longname']]);
    const name = 'Ꮮ'.repeat(300); // Synapse refuses display names over 256 characters
    await testa.injectText('chan-longname', { id: 'longname', name }, 'my name is long');
    const ev = await alice.waitForEvent(roomId, (e) => body(e) === 'my name is long');
    expect(ev.sender).toBe('@testa_longname:localhost');
    expect(await alice.displayName('@testa_longname:localhost')).toBe(`${'Ꮮ'.repeat(255)}…`);
  });

  it('shows a remote message in the room from the right ghost with its display name', async () => {
    const roomId = await linkedRoom([['testa', 'chan-2']]);
    await testa.injectText('chan-2', { id: 'carol', name: 'Carol from A' }, 'hi from the other side');
    const ev = await alice.waitForEvent(roomId, (e) => body(e) === 'hi from the other side');
    expect(ev.sender).toBe('@testa_carol:localhost');
    expect(await alice.displayName('@testa_carol:localhost')).toBe('Carol from A');
    // the ghost's own message is not echoed back to the network it came from
    await alice.sendText(roomId, 'marker after ghost message');
    await testa.waitFor((r) => r.kind === 'message' && r.msg.body === 'marker after ghost message');
    expect(testa.received.some((r) => r.kind === 'message' && r.msg.body === 'hi from the other side')).toBe(false);
  });

  it('maps edits and redactions from Matrix through the message map', async () => {
    const roomId = await linkedRoom([['testa', 'chan-3']]);
    const orig = await alice.sendText(roomId, 'tyop');
    const sent = await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === orig);
    if (sent.kind !== 'message') throw new Error('unreachable');
    const edit = await alice.sendText(roomId, '* typo', {
      'm.new_content': { msgtype: 'm.text', body: 'typo' }, 'm.relates_to': { rel_type: 'm.replace', event_id: orig },
    });
    const e = await testa.waitFor((r) => r.kind === 'edit' && r.edit.eventId === edit);
    if (e.kind !== 'edit') throw new Error('unreachable');
    expect(e.edit.body).toBe('typo');
    expect(e.edit.previousBody).toBe('tyop');
    expect(e.edit.target).toEqual({ eventId: orig, remoteIds: [expect.stringMatching(/^testa-m/)] });
    await alice.redact(roomId, orig, 'oops');
    const red = await testa.waitFor((r) => r.kind === 'redaction' && r.redaction.target.eventId === orig);
    if (red.kind !== 'redaction') throw new Error('unreachable');
    expect(red.redaction.target.remoteIds).toEqual(e.edit.target.remoteIds);
    expect(red.redaction.reason).toBe('oops');
    // a reply to the deleted message reaches the network without its text (a network would quote it)
    const before = await alice.sendText(roomId, 'my password is hunter2');
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === before);
    const replyToKept = await alice.sendText(roomId, 'reply to a kept one', { 'm.relates_to': { 'm.in_reply_to': { event_id: before } } });
    const kept = await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === replyToKept);
    expect(kept.kind === 'message' && kept.msg.replyTo?.body).toBe('my password is hunter2');
    await alice.redact(roomId, before, 'oops');
    await testa.waitFor((r) => r.kind === 'redaction' && r.redaction.target.eventId === before);
    const replyToGone = await alice.sendText(roomId, 'reply to a deleted one', { 'm.relates_to': { 'm.in_reply_to': { event_id: before } } });
    const gone = await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === replyToGone);
    if (gone.kind !== 'message') throw new Error('unreachable');
    expect(gone.msg.replyTo).toMatchObject({ eventId: before });
    expect(gone.msg.replyTo?.body).toBeUndefined();
    expect(bridge.database.prepare('SELECT body FROM message_map WHERE event_id = ?').all(before)).toEqual([expect.objectContaining({ body: null })]);
  });

  it('maps remote edits, deletions, replies and reactions to Matrix events', async () => {
    const roomId = await linkedRoom([['testa', 'chan-4']]);
    const dave = { id: 'dave', name: 'Dave' };
    await testa.injectText('chan-4', dave, 'first version', { id: 'r-100' });
    const orig = await alice.waitForEvent(roomId, (e) => body(e) === 'first version');
    await testa.remote.edit({ chat: 'chan-4', target: 'r-100', id: 'r-100:e1', sender: { id: 'dave', displayName: 'Dave' }, content: { msgtype: 'm.text', body: 'second version' } });
    const edit = await alice.waitForEvent(roomId, (e) => (e.content['m.relates_to'] as { rel_type?: string } | undefined)?.rel_type === 'm.replace');
    expect(edit.content['m.relates_to']).toEqual({ rel_type: 'm.replace', event_id: orig.event_id });
    expect(edit.content['m.new_content']).toEqual({ msgtype: 'm.text', body: 'second version' });
    expect(edit.sender).toBe(orig.sender);

    await testa.injectText('chan-4', dave, 'a reply', { id: 'r-101', replyTo: 'r-100' });
    const reply = await alice.waitForEvent(roomId, (e) => body(e) === 'a reply');
    expect(reply.content['m.relates_to']).toEqual({ 'm.in_reply_to': { event_id: orig.event_id } });

    await testa.remote.reaction({ chat: 'chan-4', target: 'r-101', sender: { id: 'dave', displayName: 'Dave' }, key: '👍' });
    const reaction = await alice.waitForEvent(roomId, (e) => e.type === 'm.reaction');
    expect(reaction.content['m.relates_to']).toEqual({ rel_type: 'm.annotation', event_id: reply.event_id, key: '👍' });

    await testa.remote.delete({ chat: 'chan-4', target: 'r-100' });
    await until(async () => {
      const ev = await alice.getEvent(roomId, orig.event_id);
      return ev.unsigned?.['redacted_because'] !== undefined && Object.keys(ev.content).length === 0;
    }, 'the original event to be redacted');
    // deleted at its source: its text is not kept for quoting either
    expect(bridge.database.prepare('SELECT body FROM message_map WHERE event_id = ? AND body IS NOT NULL').all(orig.event_id)).toEqual([]);
  });

  it('shows a remote user typing through their ghost', async () => {
    const roomId = await linkedRoom([['testa', 'typing']]);
    await testa.injectText('typing', { id: 'tina', name: 'Tina' }, 'about to type');
    await alice.waitForEvent(roomId, (e) => body(e) === 'about to type');
    const filter = encodeURIComponent(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 1 } } }));
    const first = await alice.request<{ next_batch: string }>('GET', `/_matrix/client/v3/sync?timeout=0&filter=${filter}`);
    await testa.remote.typing({ chat: 'typing', user: { id: 'tina', displayName: 'Tina' }, typing: true });
    const typingNow = await alice.request<{ rooms?: { join?: Record<string, { ephemeral?: { events: { type: string; content: { user_ids?: string[] } }[] } }> } }>(
      'GET', `/_matrix/client/v3/sync?timeout=10000&since=${first.next_batch}&filter=${filter}`);
    const typingEvent = typingNow.rooms?.join?.[roomId]?.ephemeral?.events.find((e) => e.type === 'm.typing');
    expect(typingEvent?.content.user_ids).toContain('@testa_tina:localhost');
  });

  it('relays between two remote chats linked to one room, without echoing back', async () => {
    const roomId = await linkedRoom([['testa', 'relay-a'], ['testb', 'relay-b']]);
    await testa.injectText('relay-a', { id: 'erin', name: 'Erin' }, 'from A to everyone');
    const got = await testb.waitFor((r) => r.kind === 'message' && r.msg.body === 'from A to everyone');
    if (got.kind !== 'message') throw new Error('unreachable');
    expect(got.msg.sender.userId).toBe('@testa_erin:localhost');
    expect(got.msg.sender.displayName).toBe('Erin');
    expect(got.msg.sender.ghostOf).toEqual({ network: 'testa', remoteUser: 'erin' });
    await testb.injectText('relay-b', { id: 'frank', name: 'Frank' }, 'from B to everyone');
    await testa.waitFor((r) => r.kind === 'message' && r.msg.body === 'from B to everyone');
    // a Matrix user's message reaches both, and nothing came back to its origin
    const m = await alice.sendText(roomId, 'from Matrix to both');
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === m);
    await testb.waitFor((r) => r.kind === 'message' && r.msg.eventId === m);
    expect(testa.received.filter((r) => r.kind === 'message' && r.msg.body === 'from A to everyone')).toHaveLength(0);
    expect(testb.received.filter((r) => r.kind === 'message' && r.msg.body === 'from B to everyone')).toHaveLength(0);
  });

  it('keeps 200 messages in order in both directions', async () => {
    const roomId = await linkedRoom([['testa', 'burst']]);
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push(await alice.sendText(roomId, `m2r ${i}`));
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === ids[199], 60_000);
    const got = testa.received.filter((r) => r.kind === 'message' && r.msg.portal.remoteChat === 'burst').map((r) => (r.kind === 'message' ? r.msg.body : ''));
    expect(got).toEqual(ids.map((_, i) => `m2r ${i}`));

    await Promise.all(Array.from({ length: 200 }, (_, i) => testa.injectText('burst', { id: 'gina', name: 'Gina' }, `r2m ${i}`)));
    const events = await alice.waitForTimeline(roomId, (evs) => evs.filter((e) => String(body(e)).startsWith('r2m ')).length >= 200, 90_000);
    const bodies = messagesOf(events).map(body).filter((b) => String(b).startsWith('r2m '));
    expect(bodies).toEqual(Array.from({ length: 200 }, (_, i) => `r2m ${i}`));
  });
});

describe('failures, commands and provisioning', () => {
  it('tells the sender when a message cannot be delivered after the retries', async () => {
    const roomId = await linkedRoom([['testa', 'refuses']]);
    const eventId = await alice.sendText(roomId, 'this will not arrive');
    const notice = await alice.waitForEvent(roomId, (e) => e.sender === botId && String(body(e)).includes('could not be delivered'));
    expect(String(body(notice))).toContain(eventId);
    expect(String(body(notice))).toContain('Test A');
    const failures = await bridge.metrics.sendFailures.get();
    const count = (final: string): number => failures.values.find((v) => v.labels.network === 'remote' && v.labels.final === final)?.value ?? 0;
    expect(count('false')).toBeGreaterThanOrEqual(3); // every failed attempt
    expect(count('true')).toBeGreaterThanOrEqual(1); // and the give-up
  });

  it('opens one admin room for notices that come at once, and a new one after the user leaves it', async () => {
    const nia = await MatrixUser.register(e2e.synapseUrl, e2e.sharedSecret, `nia${Date.now()}`, { displayName: 'Nia' });
    let asked = 0; // Synapse answers the same initial sync from a cache for a while: each one asked differently
    const invites = async (): Promise<string[]> => {
      const filter = encodeURIComponent(JSON.stringify({ room: { timeline: { limit: ++asked } } }));
      return Object.keys((await nia.request<{ rooms?: { invite?: Record<string, unknown> } }>('GET', `/_matrix/client/v3/sync?timeout=0&filter=${filter}`)).rooms?.invite ?? {});
    };
    await Promise.all([bridge.notifyUser(nia.userId, 'news from A'), bridge.notifyUser(nia.userId, 'news from B')]);
    const first = await invites();
    expect(first).toHaveLength(1);
    await nia.join(first[0]!);
    await nia.request('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(first[0]!)}/leave`, {});
    // the bot goes too, and the next notice does not go to a room nobody reads
    await until(async () => !(await bridge.matrix.request<{ joined_rooms: string[] }>('GET', '/_matrix/client/v3/joined_rooms')).joined_rooms.includes(first[0]!),
      'the bot to leave the old admin room');
    await bridge.notifyUser(nia.userId, 'later news');
    const later = (await invites()).filter((r) => r !== first[0]);
    expect(later).toHaveLength(1);
    await nia.join(later[0]!);
    await nia.waitForEvent(later[0]!, (e) => e.sender === botId && body(e) === 'later news');
  });

  it('answers commands in the admin room and checks permissions for link', async () => {
    const dm = await bob.createRoom({ preset: 'trusted_private_chat', is_direct: true, invite: [botId] });
    await bob.waitForEvent(dm, (e) => e.sender === botId && String(body(e)).includes('admin room'));
    await bob.sendText(dm, 'ping');
    await bob.waitForEvent(dm, (e) => e.sender === botId && body(e) === 'pong');
    await bob.sendText(dm, 'help');
    const help = await bob.waitForEvent(dm, (e) => e.sender === botId && String(body(e)).startsWith('Commands'));
    expect(String(body(help))).toMatch(/link <network> <chat>/);

    // bob has power 0 in alice's room: link is refused
    const roomId = await linkedRoom([]);
    await bob.join(roomId);
    await bob.sendText(roomId, '!trestle link testa sneaky');
    await bob.waitForEvent(roomId, (e) => e.sender === botId && String(body(e)).includes('needs power level 50'));
    expect(bridge.portals.forRoom(roomId)).toHaveLength(0);

    // in a room of version 12 the creator is absent from the power levels and above them all
    const v12 = await alice.createRoom({ name: 'version 12', room_version: '12' });
    await alice.invite(v12, botId);
    await until(async () => (await alice.joinedMembers(v12)).includes(botId), 'the bot to join');
    await alice.sendText(v12, '!trestle link testa v12-chat');
    await alice.waitForEvent(v12, (e) => e.sender === botId && String(body(e)).startsWith('Linked this room to testa v12-chat'));
  });

  it('links, lists and unlinks through the provisioning API with a bearer secret', async () => {
    const roomId = await linkedRoom([]);
    const api = `${asUrl}/_trestle/provision/v1`;
    const auth = { authorization: 'Bearer e2e-provisioning-secret', 'content-type': 'application/json' };
    expect((await fetch(`${api}/networks`, { headers: { authorization: 'Bearer nope' } })).status).toBe(403);
    // a body that is not JSON: without the secret nothing is read; with it, a JSON error, not an HTML page
    const garbage = { method: 'POST', body: '{not json' };
    expect((await fetch(`${api}/link`, { ...garbage, headers: { 'content-type': 'application/json' } })).status).toBe(403);
    const bad = await fetch(`${api}/link`, { ...garbage, headers: auth });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/json/);
    expect(await bad.json()).toMatchObject({ errcode: 'M_BAD_JSON' });
    const nets = (await (await fetch(`${api}/networks`, { headers: auth })).json()) as { id: string }[];
    expect(nets.map((n) => n.id)).toEqual(expect.arrayContaining(['testa', 'testb']));
    // on behalf of someone without power in the room: refused, as the command would be
    const sneaky = await fetch(`${api}/link`, { method: 'POST', headers: auth, body: JSON.stringify({ room_id: roomId, network: 'testb', remote_chat: 'prov', user_id: bob.userId }) });
    expect(sneaky.status).toBe(403);
    expect(((await sneaky.json()) as { error: string }).error).toMatch(/needs power level 50/);
    expect(bridge.portals.forRoom(roomId)).toEqual([]);
    const link = await fetch(`${api}/link`, { method: 'POST', headers: auth, body: JSON.stringify({ room_id: roomId, network: 'testb', remote_chat: 'prov', user_id: alice.userId }) });
    expect(link.status).toBe(200);
    const links = (await (await fetch(`${api}/links?room_id=${encodeURIComponent(roomId)}`, { headers: auth })).json()) as unknown[];
    expect(links).toEqual([{ network: 'testb', remoteChat: 'prov', kind: 'plumbed' }]);
    const m = await alice.sendText(roomId, 'via provisioned link');
    await testb.waitFor((r) => r.kind === 'message' && r.msg.eventId === m);
    const unlinkAs = (userId: string): Promise<Response> => fetch(`${api}/unlink`, { method: 'POST', headers: auth, body: JSON.stringify({ room_id: roomId, network: 'testb', remote_chat: 'prov', user_id: userId }) });
    expect((await unlinkAs(bob.userId)).status).toBe(403);
    expect(bridge.portals.forRoom(roomId)).toHaveLength(1);
    const unlink = await unlinkAs(alice.userId);
    expect(unlink.status).toBe(200);
    expect(bridge.portals.forRoom(roomId)).toHaveLength(0);
  });

  it('says it cannot read an encrypted room: refuses to link one, and tells a bridged room once when encryption is turned on', async () => {
    const encryption = { type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } };
    const ciphertext = { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'AwgAEn...', sender_key: 'k', session_id: 's', device_id: 'DEVICE' };
    const notices = async (roomId: string, start: string): Promise<string[]> =>
      (await alice.timeline(roomId)).filter((e) => e.sender === botId && String(body(e)).startsWith(start)).map((e) => String(body(e)));
    // an encrypted room: no link, through the provisioning API or a command
    const secret = await alice.createRoom({ name: 'encrypted', initial_state: [encryption], invite: [botId] });
    await until(async () => (await alice.joinedMembers(secret)).includes(botId), 'the bot to join');
    const res = await fetch(`${asUrl}/_trestle/provision/v1/link`, {
      method: 'POST', headers: { authorization: 'Bearer e2e-provisioning-secret', 'content-type': 'application/json' },
      body: JSON.stringify({ room_id: secret, network: 'testa', remote_chat: 'enc-1', user_id: alice.userId }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/end-to-end encrypted/);
    await alice.sendText(secret, '!trestle link testa enc-2'); // a client may still send a command in the clear
    await alice.waitForEvent(secret, (e) => e.sender === botId && /end-to-end encrypted/.test(String(body(e))));
    expect(bridge.portals.forRoom(secret)).toEqual([]);
    // what is said there encrypted: the room is told once that the bridge cannot read it
    await alice.sendEvent(secret, 'm.room.encrypted', ciphertext);
    await alice.waitForEvent(secret, (e) => e.sender === botId && String(body(e)).startsWith('This room is end-to-end encrypted'));
    await alice.sendEvent(secret, 'm.room.encrypted', ciphertext);

    // a bridged room where encryption is turned on: told once, and nothing encrypted is passed on
    const roomId = await linkedRoom([['testa', 'enc-3']]);
    await alice.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`, encryption.content);
    const told = await alice.waitForEvent(roomId, (e) => e.sender === botId && String(body(e)).startsWith('End-to-end encryption was turned on'));
    expect(String(body(told))).toContain('nothing said here reaches Test A');
    await alice.sendEvent(roomId, 'm.room.encrypted', ciphertext);
    const after = await alice.sendText(roomId, 'in the clear after all'); // a marker the bridge handles after the encrypted event
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === after);
    expect(testa.received.filter((r) => r.kind === 'message' && r.msg.portal.remoteChat === 'enc-3').map((r) => r.kind === 'message' && r.msg.body)).toEqual(['in the clear after all']);
    expect(await notices(roomId, 'End-to-end encryption')).toHaveLength(1);
    expect(await notices(roomId, 'This room is end-to-end encrypted')).toHaveLength(0);
    expect(await notices(secret, 'This room is end-to-end encrypted')).toHaveLength(1);
  });

  it('sends nothing for a message deleted while the bridge was stopped (Synapse catches up with it emptied)', async () => {
    const roomId = await linkedRoom([['testa', 'chan-del']]);
    await bridge.stop();
    await alice.sendText(roomId, 'said while the bridge was stopped');
    const gone = await alice.sendText(roomId, 'deleted while the bridge was stopped');
    await alice.redact(roomId, gone, 'typo');
    await alice.sendText(roomId, 'said after the deletion');
    await start();
    await testa.waitFor((r) => r.kind === 'message' && r.msg.body === 'said after the deletion', 90_000);
    const got = testa.received.filter((r) => r.kind === 'message' && r.msg.portal.remoteChat === 'chan-del').map((r) => r.kind === 'message' && r.msg.body);
    expect(got).toEqual(['said while the bridge was stopped', 'said after the deletion']);
  }, 120_000);

  it('serves Prometheus metrics', async () => {
    // event types anyone in a room may make up are counted as "other", not each as its own series
    const roomId = await linkedRoom([['testa', 'metrics-1']]);
    for (let i = 0; i < 3; i++) await alice.sendEvent(roomId, `org.example.made.up.${i}`, { n: i });
    const marker = await alice.sendText(roomId, 'after the made-up events');
    await testa.waitFor((r) => r.kind === 'message' && r.msg.eventId === marker);
    const text = await (await fetch(`${asUrl}/metrics`)).text();
    expect(text).not.toContain('org.example.made.up');
    expect(text).toMatch(/trestle_events_in_total\{network="matrix",type="other"\} [3-9]/);
    expect(text).toMatch(/trestle_events_in_total\{network="matrix",type="m.room.message"\} [1-9]/);
    expect(text).toMatch(/trestle_appservice_transactions_total\{outcome="ok"\} [1-9]/);
    expect(text).toMatch(/trestle_events_out_total\{network="testa",type="message"\} [1-9]/);
    expect(text).toContain('trestle_delivery_latency_seconds_bucket');
  });
});
