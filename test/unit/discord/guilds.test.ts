import { describe, expect, it } from 'vitest';
import { durationWords as duration } from '../../../packages/core/src/util/words.js';
import { replyVerdict } from '../../../packages/discord/src/approvals.js';
import { channelNameFromRoomName, discordTopic, portalRoomName, spaceOrders, type ChannelPlace } from '../../../packages/discord/src/guilds.js';
import { departureOf, departureReason } from '../../../packages/discord/src/members.js';

const text = (id: string, rawPosition: number, parentId: string | null = null): ChannelPlace => ({ id, parentId, rawPosition, category: false });
const category = (id: string, rawPosition: number): ChannelPlace => ({ id, parentId: null, rawPosition, category: true });

describe('space order of a server\'s channels', () => {
  it('lists channels outside categories first, then categories in position order, channels by position within', () => {
    const orders = spaceOrders([
      category('100', 2), category('200', 1),
      text('1', 0), text('2', 5, '100'), text('3', 1, '100'), text('4', 3, '200'), text('5', 9),
    ]);
    const sorted = [...orders].sort((a, b) => a[1].localeCompare(b[1])).map(([id]) => id);
    expect(sorted).toEqual(['1', '5', '4', '3', '2']);
    expect(orders.has('100')).toBe(false); // categories are not rooms
    for (const o of orders.values()) expect(o).toMatch(/^[\x20-\x7e]{1,50}$/); // what the spec allows in an order
  });

  it('breaks position ties by id, as Discord does, and puts channels of an unknown category with the uncategorised', () => {
    const orders = spaceOrders([text('30', 0), text('20', 0), text('10', 1, '999')]);
    expect([...orders].sort((a, b) => a[1].localeCompare(b[1])).map(([id]) => id)).toEqual(['20', '30', '10']);
  });
});

describe('portal room names and topics', () => {
  it('names a portal room after its channel and server, and reads a Matrix name back as a Discord channel name', () => {
    expect(portalRoomName('general', 'My Server')).toBe('#general (My Server)');
    expect(channelNameFromRoomName('#general (My Server)', 'My Server')).toBe('general');
    expect(channelNameFromRoomName('#Off Topic (My Server)', 'My Server')).toBe('off-topic');
    expect(channelNameFromRoomName('  News  and   stuff ', 'My Server')).toBe('news-and-stuff');
    expect(channelNameFromRoomName('#chat (Another Server)', 'My Server')).toBe('chat-(another-server)');
    expect(channelNameFromRoomName('##', 'S')).toBe('');
    expect([...channelNameFromRoomName('x'.repeat(150), 'S')]).toHaveLength(100);
  });

  it('cuts a topic to Discord\'s 1024 characters with a mark', () => {
    expect(discordTopic('short')).toBe('short');
    const long = discordTopic('t'.repeat(2000));
    expect(long).toHaveLength(1024);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('departures from a Discord server', () => {
  const kick = { kind: 'kick' as const, executorId: '9', reason: 'spam' };
  it('waits for the rest of the story, then tells a leave, a kick and a ban apart', () => {
    // removed with nothing else: a leave, but only once the wait is over
    expect(departureOf({ removed: true }, false)).toBeUndefined();
    expect(departureOf({ removed: true }, true)).toEqual({ kind: 'leave', executorId: null, reason: null });
    // removed and a kick entry: a kick at once, whichever came first
    expect(departureOf({ removed: true, audit: kick }, false)).toEqual(kick);
    expect(departureOf({ audit: kick }, false)).toBeUndefined();
    // a ban wins over the removal it causes; the audit entry adds who and why
    expect(departureOf({ removed: true, banned: { reason: null } }, false)).toBeUndefined();
    expect(departureOf({ removed: true, banned: { reason: null } }, true)).toEqual({ kind: 'ban', executorId: null, reason: null });
    expect(departureOf({ banned: { reason: 'r1' }, audit: { kind: 'ban', executorId: '9', reason: null } }, false)).toEqual({ kind: 'ban', executorId: '9', reason: 'r1' });
    // only an audit entry (the user was not in the server): nothing to report
    expect(departureOf({ audit: kick }, true)).toBeUndefined();
  });

  it('words the reason the Matrix side shows', () => {
    expect(departureReason({ kind: 'leave', executorId: null, reason: null }, undefined)).toBe('left the Discord server');
    expect(departureReason(kick, 'moddy')).toBe('kicked from the Discord server by moddy: spam');
    expect(departureReason({ kind: 'ban', executorId: null, reason: null }, undefined)).toBe('banned in the Discord server');
  });
});

describe('link approvals', () => {
  it('reads a reply as an approval, a refusal or neither', () => {
    for (const t of ['approve', 'Approved!', 'yes please', 'OK', 'accept', 'Approve, welcome!']) expect(replyVerdict(t)).toBe('approve');
    for (const t of ['deny', 'No.', 'refuse', 'rejected, reject']) expect(replyVerdict(t)).toBe('deny');
    // a question is no answer, however it starts
    for (const t of ['maybe', 'I approve', 'nope', '', 'ok who sent this?', 'yes? from where', 'no idea what this is?']) expect(replyVerdict(t)).toBeUndefined();
  });

  it('says how long a request waits', () => {
    expect(duration(300)).toBe('5 minutes');
    expect(duration(60)).toBe('1 minute');
    expect(duration(6)).toBe('6 seconds');
    expect(duration(1)).toBe('1 second');
    expect(duration(90)).toBe('90 seconds');
  });
});
