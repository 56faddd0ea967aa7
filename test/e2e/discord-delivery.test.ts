/**
 * The Discord bridge against the fake Discord (an unmodified discord.js logs in to it) and a real Synapse.
 * Delivery exactly once: a Matrix message whose webhook post Discord stored but whose answer was lost
 * (a 500 after storing, a connection closed, no answer at all until the REST timeout) is on Discord once,
 * mapped to its Matrix event so that an edit and a redaction reach it; one Discord did not store is
 * posted again, once.
 * Shared set-up: discord-harness.ts.
 */
import { describe, expect, it } from 'vitest';
import type { NoAnswer } from '../harness/fake-discord/server.js';
import { fake, alice, botId, body, channel, plumbed, fromWebhook, webhookContents, useDiscordBridge } from './discord-harness.js';
import { sleep, until } from './env.js';

useDiscordBridge();

/** The bot's ⚠ notices in a room (a message given up is reported so). */
const notices = async (roomId: string): Promise<string[]> =>
  (await alice.timeline(roomId)).filter((e) => e.sender === botId && body(e).startsWith('⚠')).map(body);

/**
 * A room linked to a new channel, whose webhook exists already (a first message went), so that the
 * failure injected next hits the post under test and not the webhook's creation.
 */
async function linkedRoom(name: string): Promise<{ ch: ReturnType<typeof channel>; roomId: string }> {
  const ch = channel(name);
  const roomId = await plumbed(ch);
  await alice.sendText(roomId, `${name}: first`);
  await until(() => webhookContents(ch.id).includes(`${name}: first`), 'the first message on Discord');
  return { ch, roomId };
}

/**
 * Send `text` while the fake stores its webhook message but fails the answer (`how`), and check that it is
 * on Discord once, in order, and that its Discord id is mapped: an edit changes it, a redaction deletes it.
 */
async function exactlyOnce(name: string, how: '500' | NoAnswer, waitMs = 30_000): Promise<void> {
  const { ch, roomId } = await linkedRoom(name);
  const text = `${name}: stored, answer lost`;
  fake.failNextWebhookAfterStoring(how);
  const eventId = await alice.sendText(roomId, text);
  await alice.sendText(roomId, `${name}: after`); // behind it in the room's queue: on Discord once it is settled
  await until(() => webhookContents(ch.id).includes(`${name}: after`), 'the next message on Discord', waitMs);
  expect(webhookContents(ch.id)).toEqual([`${name}: first`, text, `${name}: after`]);
  expect(fake.webhookExecutions.filter((x) => x.content === text)).toHaveLength(1); // posted once: not retried
  const posted = fromWebhook(ch.id).find((m) => m.content === text)!;

  await alice.sendText(roomId, `* ${text}, edited`, { 'm.new_content': { msgtype: 'm.text', body: `${text}, edited` }, 'm.relates_to': { rel_type: 'm.replace', event_id: eventId } });
  await until(() => fake.message(posted.id)?.content === `${text}, edited`, 'the edit to reach the Discord message');
  await alice.redact(roomId, eventId);
  await until(() => fake.message(posted.id) === undefined, 'the redaction to delete the Discord message');
  expect(webhookContents(ch.id)).toEqual([`${name}: first`, `${name}: after`]);
  await sleep(300);
  expect(await notices(roomId)).toEqual([]);
}

describe('Discord bridge: a Matrix message reaches Discord exactly once', () => {
  it('when Discord stores the webhook message, then answers 500', async () => {
    await exactlyOnce('stored-500', '500');
  });

  it('when Discord stores the webhook message, then closes the connection', async () => {
    await exactlyOnce('stored-reset', 'reset');
  });

  it('when Discord stores the webhook message, then never answers (the REST timeout, 15 s, runs out)', async () => {
    // discord.js's REST timeout (15 s) is not a setting of the bridge: this test waits it out once
    await exactlyOnce('stored-hang', 'hang', 45_000);
  }, 60_000);

  it('posts again, once, a message Discord did not store (500 before storing)', async () => {
    const { ch, roomId } = await linkedRoom('not-stored');
    fake.failNext('POST /webhooks/:webhook/:token', 500);
    await alice.sendText(roomId, 'not-stored: refused with 500');
    await alice.sendText(roomId, 'not-stored: after');
    await until(() => webhookContents(ch.id).includes('not-stored: after'), 'the next message on Discord');
    expect(webhookContents(ch.id)).toEqual(['not-stored: first', 'not-stored: refused with 500', 'not-stored: after']);
    const tries = fake.requests.filter((r) => r.route === '/webhooks/:webhook/:token' && r.method === 'POST'
      && (r.body as { content?: string } | null)?.content === 'not-stored: refused with 500').map((r) => r.status);
    expect(tries).toEqual([500, 200]);
    expect(await notices(roomId)).toEqual([]);
  });
});
