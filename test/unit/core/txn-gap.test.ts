import { describe, expect, it } from 'vitest';
import { TransactionGapGuard } from '../../../packages/core/src/matrix/appservice.js';

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

  it('switches itself off for a homeserver whose ids are not consecutive', () => {
    expect(run(['10', '20', '20', '30', '30', '40', '40', '50', '60'])).toEqual(
      ['ok', 'refuse 11..19', 'ok', 'refuse 21..29', 'ok', 'refuse 31..39', 'ok', 'ok', 'ok']);
  });
});
