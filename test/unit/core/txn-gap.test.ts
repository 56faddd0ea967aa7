import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { TransactionGapGuard, transactionListener, type TransactionHandler } from '../../../packages/core/src/matrix/appservice.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';

/** Run ids through a guard the way the transaction handler does; the verdict of each. */
function run(ids: string[]): string[] {
  const g = new TransactionGapGuard();
  return ids.map((id) => {
    const v = g.check(id);
    if (v.verdict === 'accept') { g.accepted(id); return 'ok'; }
    return `refuse ${v.missing}`;
  });
}

describe('TransactionGapGuard', () => {
  it.each([
    ['consecutive ids', ['7', '8', '9'], ['ok', 'ok', 'ok']],
    ['a replay of an older id', ['7', '8', '7'], ['ok', 'ok', 'ok']],
    ['the first id seen, whatever it is', ['1623'], ['ok']],
    // Synapse's recovery race: 1623 held back; refusing 1624 makes it resend 1623, then 1624
    ['a held-back transaction', ['1622', '1624', '1623', '1624', '1625'], ['ok', 'refuse 1623', 'ok', 'ok', 'ok']],
    ['a wider gap', ['10', '13', '11', '12', '13'], ['ok', 'refuse 11..12', 'ok', 'ok', 'ok']],
    // nothing was held back: the same id comes again, and is taken
    ['a gap nobody fills', ['10', '12', '12', '13'], ['ok', 'refuse 11', 'ok', 'ok']],
    ['ids that are not numbers', ['a', 'c', 'b'], ['ok', 'ok', 'ok']],
  ])('%s', (_what, ids, verdicts) => { expect(run(ids)).toEqual(verdicts); });

  it('says when it switches itself off, once, and stays off when started off (remembered from an earlier start)', () => {
    let told = 0;
    const g = new TransactionGapGuard(false, () => { told++; });
    for (const id of ['10', '20', '20', '30', '30', '40', '40', '50', '60']) if (g.check(id).verdict === 'accept') g.accepted(id);
    expect(told).toBe(1);
    const later = new TransactionGapGuard(true, () => { told++; });
    for (const id of ['100', '120', '140']) { expect(later.check(id).verdict).toBe('accept'); later.accepted(id); }
    expect(told).toBe(1);
  });

  it('switches itself off for a homeserver whose ids are not consecutive', () => {
    expect(run(['10', '20', '20', '30', '30', '40', '40', '50', '60'])).toEqual(
      ['ok', 'refuse 11..19', 'ok', 'refuse 21..29', 'ok', 'refuse 31..39', 'ok', 'ok', 'ok']);
  });
});

describe('the transaction listener\'s gap guard, across restarts', () => {
  /** A listener on a real port whose handler keeps the guard's memory in `memory`; PUT ids, get the statuses. */
  async function listener(memory: { off: boolean }): Promise<{ put: (id: string) => Promise<number>; close: () => void }> {
    const handler: TransactionHandler = {
      persistTransaction() {}, seenTransaction: () => false, onEphemeral() {}, queryUser: async () => false, queryAlias: async () => false,
      gapGuard: { foundOff: () => memory.off, switchedOff: () => { memory.off = true; } },
    };
    const listen = transactionListener('hs-token', handler, silentLogger);
    const server = createServer((req, res) => { if (!listen(req, res)) res.writeHead(404).end(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const event = { type: 'm.room.message', room_id: '!r:x', sender: '@a:x', event_id: '$e', content: { body: 'x' } };
    const put = async (id: string): Promise<number> => (await fetch(`${url}/_matrix/app/v1/transactions/${id}`, {
      method: 'PUT', headers: { authorization: 'Bearer hs-token', 'content-type': 'application/json' },
      body: JSON.stringify({ events: [{ ...event, event_id: `$e${id}` }] }),
    })).status;
    return { put, close: () => { server.closeAllConnections(); server.close(); } };
  }

  it('remembers that a homeserver\'s ids have gaps (other appservices take numbers), and refuses none at the next start', async () => {
    const memory = { off: false };
    const first = await listener(memory);
    const statuses: number[] = [];
    for (const id of ['10', '20', '20', '30', '30', '40', '40', '50']) statuses.push(await first.put(id));
    first.close();
    expect(statuses).toEqual([200, 503, 200, 503, 200, 503, 200, 200]);
    expect(memory.off).toBe(true);
    const next = await listener(memory); // a restart
    expect([await next.put('60'), await next.put('70')]).toEqual([200, 200]);
    next.close();
  });
});
