// A Matrix message that reached one of a room's two networks and not the other (down) is tried
// again after a restart, from the payload read back from the store: the network that has it must
// not get it a second time (the message map says it has it). Only the pieces FromMatrix touches
// for a plain message are stood in.
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../../packages/core/src/db/database.js';
import { MessageStore } from '../../../packages/core/src/db/messages.js';
import { FromMatrix, type FromMatrixDeps, type MatrixWork } from '../../../packages/core/src/bridge/fromMatrix.js';
import { silentLogger } from '../../../packages/core/src/util/log.js';
import { DeliveryError, type MatrixMessage, type NetworkConnector } from '../../../packages/core/src/network/contract.js';

/** A network that records what it was sent, or fails as unreachable while `down()`. */
function network(id: string, sent: string[], down: () => boolean): NetworkConnector {
  return {
    identity: { id, displayName: id, userPrefix: `${id}_` },
    connectMatrixUser: async () => undefined,
    handleMatrixMessage: async (m: MatrixMessage) => {
      if (down()) throw new DeliveryError(`${id} is down`, false, { unreachable: true });
      sent.push(`${id}:${m.body}`);
      return { remoteIds: [`${id}-1`] };
    },
  } as unknown as NetworkConnector;
}

describe('FromMatrix: a room linked to two networks', () => {
  it('after a restart, sends a message only to the portal an earlier attempt did not reach', async () => {
    const messages = new MessageStore(openDatabase(':memory:'));
    const sent: string[] = [];
    let bDown = true;
    const deps = {
      matrix: { botUserId: '@bot:x', noteMember: () => undefined, memberProfile: async () => ({ displayName: 'alice' }) },
      portals: { forRoom: () => [
        { roomId: '!r', network: 'a', remoteChat: 'ca', kind: 'plumbed' }, { roomId: '!r', network: 'b', remoteChat: 'cb', kind: 'plumbed' },
      ] },
      messages, log: silentLogger,
      networks: new Map([['a', network('a', sent, () => false)], ['b', network('b', sent, () => bDown)]]),
      ghostNetwork: () => undefined, ghostRemoteUser: () => undefined, permission: () => 'user',
      tryCommand: async () => false, onBotInvite: async () => undefined, onRoomUpgrade: async () => undefined,
      onGhostInvite: async () => undefined, onLeave: async () => undefined, mediaUrl: () => undefined, onDelivered: () => undefined,
    } as unknown as FromMatrixDeps;
    const work = { event: { type: 'm.room.message', room_id: '!r', sender: '@alice:x', event_id: '$e1', content: { msgtype: 'm.text', body: 'hello' } }, receivedAt: 0 } as unknown as MatrixWork;
    await expect(new FromMatrix(deps).handle(work)).rejects.toThrow(/b is down/); // a has it; b is down: the item stays pending
    bDown = false;
    // the bridge starts again: a new FromMatrix, the payload a new object read back from the store
    await new FromMatrix(deps).handle(JSON.parse(JSON.stringify(work)) as MatrixWork);
    expect(sent).toEqual(['a:hello', 'b:hello']);
  });
});
