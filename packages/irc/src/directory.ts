/**
 * The room directory and third-party lookups for IRC: how Matrix users find IRC channels without
 * knowing the alias format (matrix-appservice-irc offers the same).
 *
 * - Each configured server is an instance of the `irc` protocol (the network's id), with its host
 *   as the `domain` field. Element's "Explore rooms" lists it; a channel typed there is looked up
 *   with {@link thirdPartyLocation} and becomes the portal alias `#irc_<server>_<#channel>`.
 * - Portal rooms are listed in their server's room list (`dynamicChannels.published`), unless the
 *   channel is secret or private (`+s`, `+p`); that is known only once the listener has seen the
 *   channel's modes, so a portal is listed then, and taken out as soon as the channel turns secret.
 *   Plumbed rooms are never listed: their owners decide where their rooms appear.
 * - What is listed is remembered in the network's kv (`listed:<room>` → server), so a restart does
 *   not ask the homeserver again for every portal, and an unlinked room is taken out.
 */
import type { NetworkContext, ThirdPartyLocation, ThirdPartyProtocol, ThirdPartyUser } from '@trestle/core';
import { channelChat, ircLower, ircUser, isChannel } from './ids.js';
import type { IrcServer } from './server.js';

/** The server a `domain` field names: its host (as configured, any case) or its key. */
function serverFor(servers: ReadonlyMap<string, IrcServer>, domain: string | undefined): IrcServer | undefined {
  if (!domain) return servers.size === 1 ? [...servers.values()][0] : undefined;
  const d = domain.trim().toLowerCase();
  return [...servers.values()].find((s) => s.cfg.host.toLowerCase() === d) ?? servers.get(d);
}

export function thirdPartyProtocol(servers: ReadonlyMap<string, IrcServer>): ThirdPartyProtocol {
  return {
    userFields: ['domain', 'nick'],
    locationFields: ['domain', 'channel'],
    fieldTypes: {
      domain: { regexp: '[a-zA-Z0-9.:-]+', placeholder: 'irc.example.org' },
      channel: { regexp: '[#&+!][^\\s,:]+', placeholder: '#channel' },
      nick: { regexp: '[^\\s#&+!:,][^\\s:,]*', placeholder: 'nick' },
    },
    instances: [...servers.values()].map((s) => ({ networkId: s.key, desc: s.displayName, fields: { domain: s.cfg.host } })),
  };
}

/**
 * The portal alias of a channel (fields `domain`, `channel`), if the bridge would open it: the
 * server's dynamic channel rules are those of joining the alias itself.
 */
export function thirdPartyLocation(opts: {
  servers: ReadonlyMap<string, IrcServer>; fields: Readonly<Record<string, string>>; aliasPrefix: string; domain: string;
  refused: (server: IrcServer, channel: string) => string | undefined;
}): ThirdPartyLocation[] {
  const server = serverFor(opts.servers, opts.fields['domain']);
  const channel = opts.fields['channel']?.trim() ?? '';
  if (!server || !isChannel(channel) || /[\s,:\0]/.test(channel) || channel.length > 200 || opts.refused(server, channel)) return [];
  const alias = `#${opts.aliasPrefix}${server.key}_${ircLower(channel)}:${opts.domain}`;
  return [{ alias, fields: { domain: server.cfg.host, channel } }];
}

/** The ghost of a nick (fields `domain`, `nick`): its Matrix id, whether or not the bridge has made it yet. */
export function thirdPartyUser(opts: {
  servers: ReadonlyMap<string, IrcServer>; fields: Readonly<Record<string, string>>; ghostUserId: (remoteUser: string) => string;
  ghostKey: (server: string, nick: string) => string;
}): ThirdPartyUser[] {
  const server = serverFor(opts.servers, opts.fields['domain']);
  const nick = opts.fields['nick']?.trim() ?? '';
  if (!server || !/^[^\s#&+!:,][^\s:,]{0,63}$/.test(nick)) return [];
  return [{ userId: opts.ghostUserId(ircUser(server.key, opts.ghostKey(server.key, nick))), fields: { domain: server.cfg.host, nick } }];
}

/** Keeps portal rooms listed in their server's room list, or not, as config and channel modes say. */
export class RoomDirectory {
  constructor(private readonly ctx: NetworkContext) {}

  /** The channel's secrecy is known (first mode sync after a join) or changed: list its portal rooms, or take them out. */
  async channelSecrecy(server: IrcServer, channel: string, secret: boolean): Promise<void> {
    const want = server.cfg.dynamicChannels.published && !secret;
    for (const p of this.ctx.portals.forChat(channelChat(server.key, channel))) {
      if (p.kind !== 'portal') continue;
      await this.set(p.roomId, server.key, want);
    }
  }

  /** A link is gone (unlink, upgrade): its room leaves the list if it was in it. */
  async unlinked(roomId: string): Promise<void> {
    const listedUnder = this.ctx.kv.get(`listed:${roomId}`);
    if (listedUnder !== undefined) await this.set(roomId, listedUnder, false);
  }

  private async set(roomId: string, serverKey: string, listed: boolean): Promise<void> {
    const key = `listed:${roomId}`;
    if ((this.ctx.kv.get(key) === serverKey) === listed) return;
    try {
      await this.ctx.matrix.publishRoom(roomId, serverKey, listed);
    } catch (err) {
      this.ctx.log.warn('could not change whether a portal room is listed in the room directory', { roomId, server: serverKey, listed, err: err as Error });
      return;
    }
    if (listed) this.ctx.kv.set(key, serverKey); else this.ctx.kv.delete(key);
    this.ctx.log.info(listed ? 'listed a portal room in the room directory' : 'took a portal room out of the room directory', { roomId, server: serverKey });
  }
}
