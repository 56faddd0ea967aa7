/** Core's own commands: help, version, ping, link, unlink, links. */
import type { CommandSpec } from './processor.js';

/** The part of the bridge the built-in commands use. */
export interface BuiltinHost {
  readonly networks: ReadonlyMap<string, { identity: { id: string; displayName: string } }>;
  readonly portals: { forRoom(roomId: string): { network: string; remoteChat: string; kind: string }[] };
  link(roomId: string, network: string, chat: string, userId: string): Promise<{ remoteChat: string }>;
  unlink(roomId: string, network: string, chat: string, userId: string): Promise<boolean>;
  helpText?(isAdmin: boolean): string;
}

/** The room power level `link` and `unlink` need (bridge admins need none), by command or provisioning API. */
export const LINK_POWER = 50;

export const VERSION = '0.1.0';

export function builtinCommands(host: BuiltinHost & { commandsHelp?: (isAdmin: boolean) => string }): CommandSpec[] {
  const networkList = (): string => [...host.networks.values()].map((n) => n.identity.id).join(', ') || 'none';
  return [
    {
      name: 'help', help: 'List the commands', permission: 'user',
      run: async (inv) => host.commandsHelp?.(inv.isAdmin) ?? 'No help available.',
    },
    { name: 'version', help: 'Show the Trestle version', permission: 'user', run: async () => `Trestle ${VERSION}` },
    { name: 'ping', help: 'Check that the bridge answers', permission: 'user', run: async () => 'pong' },
    {
      name: 'link', args: ['network', '...chat'], roomPower: LINK_POWER, permission: 'user',
      help: 'Link this room to a remote chat (power level 50 needed)',
      run: async (inv) => {
        const network = inv.args['network']!;
        if (!host.networks.has(network)) return `Unknown network "${network}". Enabled: ${networkList()}.`;
        const p = await host.link(inv.roomId, network, inv.args['chat']!, inv.sender);
        return `Linked this room to ${network} ${p.remoteChat}.`;
      },
    },
    {
      name: 'unlink', args: ['network', '...chat'], roomPower: LINK_POWER, permission: 'user',
      help: 'Unlink this room from a remote chat (power level 50 needed)',
      run: async (inv) => {
        const ok = await host.unlink(inv.roomId, inv.args['network']!, inv.args['chat']!, inv.sender);
        return ok ? `Unlinked ${inv.args['network']} ${inv.args['chat']}.` : 'This room is not linked to that chat.';
      },
    },
    {
      name: 'links', help: 'List the remote chats this room is linked to', permission: 'user',
      run: async (inv) => {
        const links = host.portals.forRoom(inv.roomId);
        return links.length ? links.map((p) => `${p.network} ${p.remoteChat} (${p.kind})`).join('\n') : 'This room is not linked to any remote chat.';
      },
    },
  ];
}
