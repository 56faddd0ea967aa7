/**
 * Third-party lookups (`/_matrix/app/v1/thirdparty/...`): the homeserver asks on behalf of a client
 * which networks, chats and users the bridge serves under a protocol name, and core asks the
 * network that answers for it ({@link ThirdPartyCapable}). The answers are shaped as the spec has
 * them; a network that throws answers nothing, and that is logged. The reverse lookups (by a Matrix
 * alias or user id) are not offered: homeservers do not pass them on to application services.
 */
import { supportsThirdParty, type NetworkConnector, type ThirdPartyCapable } from '../network/contract.js';
import type { ThirdPartyLookups } from '../matrix/appservice.js';
import type { Logger } from '../util/log.js';

export function thirdPartyLookups(networks: ReadonlyMap<string, NetworkConnector>, log: Logger): ThirdPartyLookups {
  const byProtocol = (): Map<string, NetworkConnector & ThirdPartyCapable> => {
    const m = new Map<string, NetworkConnector & ThirdPartyCapable>();
    for (const n of networks.values()) if (n.identity.protocol && supportsThirdParty(n)) m.set(n.identity.protocol, n);
    return m;
  };
  /** A network's answer, or [] with a log line when it throws (a client is waiting; nothing to retry). */
  const ask = <T>(what: string, protocol: string, fn: () => T[]): T[] => {
    try { return fn(); } catch (err) {
      log.warn('a third-party lookup failed', { what, protocol, err: err as Error });
      return [];
    }
  };
  const locations = (protocol: string, n: ThirdPartyCapable, fields: Record<string, string>) =>
    ask('location', protocol, () => n.thirdPartyLocations(fields)).map((l) => ({ alias: l.alias, protocol, fields: l.fields }));
  const users = (protocol: string, n: ThirdPartyCapable, fields: Record<string, string>) =>
    ask('user', protocol, () => n.thirdPartyUsers(fields)).map((u) => ({ userid: u.userId, protocol, fields: u.fields }));
  return {
    protocol(name) {
      const n = byProtocol().get(name);
      if (!n) return undefined;
      const p = n.thirdPartyProtocol();
      return {
        user_fields: p.userFields, location_fields: p.locationFields, field_types: p.fieldTypes, icon: p.icon ?? '',
        instances: p.instances.map((i) => ({ network_id: i.networkId, desc: i.desc, fields: i.fields, ...(i.icon ? { icon: i.icon } : {}) })),
      };
    },
    locations(name, fields) {
      const n = byProtocol().get(name);
      return n ? locations(name, n, fields) : undefined;
    },
    users(name, fields) {
      const n = byProtocol().get(name);
      return n ? users(name, n, fields) : undefined;
    },
  };
}
