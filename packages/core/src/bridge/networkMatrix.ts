/**
 * {@link NetworkMatrix} on top of the bridge bot's Matrix client: the homeserver calls a network may
 * make itself (spaces, room state, invites, notices), as the bot, through core's one client.
 */
import { MatrixError, type MatrixClientLayer } from '../matrix/client.js';
import type { NetworkMatrix } from '../network/contract.js';

const room = (roomId: string): string => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
const state = (roomId: string, type: string, stateKey: string): string =>
  `${room(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`;

/**
 * `existingGhost` names the ghost of a remote user of this network if the bridge has made it: the
 * one user other than the bot a network may act as here, and only for its presence.
 */
export function networkMatrix(matrix: MatrixClientLayer, existingGhost: (remoteUser: string) => string | undefined): NetworkMatrix {
  const bot = matrix.botUserId;
  const getState = async <T>(roomId: string, type: string, stateKey = ''): Promise<T | undefined> => {
    try {
      return await matrix.request<T & Record<string, unknown>>('GET', state(roomId, type, stateKey));
    } catch (err) {
      if (err instanceof MatrixError && err.errcode === 'M_NOT_FOUND') return undefined;
      throw err;
    }
  };
  const setState = async (roomId: string, type: string, stateKey: string, content: Record<string, unknown>): Promise<void> => {
    await matrix.request('PUT', state(roomId, type, stateKey), content);
  };
  return {
    botUserId: bot,
    getState,
    setState,
    powerLevel: (roomId, userId) => matrix.userPower(roomId, userId),
    join: (roomId) => matrix.ensureJoined(bot, roomId),
    async invite(roomId, userId) {
      await matrix.request('POST', `${room(roomId)}/invite`, { user_id: userId });
    },
    kick: (roomId, userId, reason) => matrix.moderate('kick', roomId, userId, reason),
    notice: (roomId, text) => matrix.sendNotice(roomId, text),
    async setPresence(remoteUser, presence, statusMsg) {
      const ghost = existingGhost(remoteUser);
      if (!ghost) return false;
      // status_msg always sent, "" for none, so no homeserver keeps a message the user took down
      await matrix.request('PUT', `/_matrix/client/v3/presence/${encodeURIComponent(ghost)}/status`, { presence, status_msg: statusMsg ?? '' }, ghost);
      return true;
    },
    spaces: {
      create: (opts) => matrix.createRoom({
        name: opts.name, ...(opts.topic ? { topic: opts.topic } : {}), preset: 'public_chat', visibility: 'private',
        creation_content: { type: 'm.space' },
        power_level_content_override: { users: { [bot]: 100 }, events_default: 100, invite: 0 },
        ...(opts.avatarMxc ? { initial_state: [{ type: 'm.room.avatar', state_key: '', content: { url: opts.avatarMxc } }] } : {}),
      }),
      async addChild(spaceId, roomId, opts = {}) {
        await setState(spaceId, 'm.space.child', roomId, { via: [matrix.domain], ...(opts.order ? { order: opts.order } : {}) });
        if (opts.parent) await setState(roomId, 'm.space.parent', spaceId, { via: [matrix.domain], canonical: true });
      },
      removeChild: (spaceId, roomId) => setState(spaceId, 'm.space.child', roomId, {}), // empty content: no longer a child
    },
    async publishRoom(roomId, networkId, listed) {
      await matrix.request('PUT', `/_matrix/client/v3/directory/list/appservice/${encodeURIComponent(networkId)}/${encodeURIComponent(roomId)}`,
        { visibility: listed ? 'public' : 'private' });
    },
  };
}
