/**
 * Channel renames remembered (IRCv3 `draft/channel-rename`), for the config's static `mappings`.
 *
 * A renamed channel's links move to the new name at once (listen.ts), but `mappings` in the config
 * still names the old channel, and the bridge cannot edit the admin's file: at the next start it
 * would link the room to the old name again (an empty channel the server creates anew). So each
 * rename of a statically mapped channel is kept in the network's kv, and a static mapping is read
 * through the renames made since: it follows the channel, and the log asks the admin to update the config.
 */
import { ircLower } from './ids.js';

/** The network's kv (NetworkContext.kv). */
export interface RenameKv { get(k: string): string | undefined; set(k: string, v: string): void; delete(k: string): void }

const key = (server: string, channel: string): string => `rename:${server}:${ircLower(channel)}`;
/** More hops than any real chain of renames: a guard against a record that points in a circle. */
const MAX_HOPS = 32;

/** Remember that `from` is now called `to` on `server`. */
export function noteRename(kv: RenameKv, server: string, from: string, to: string): void {
  if (ircLower(from) === ircLower(to)) return; // a new case of the same name: the same channel
  kv.delete(key(server, to)); // `to` names a live channel again (a rename back): not a rename of it any more
  kv.set(key(server, from), to);
}

/** The name a channel has now, following the renames remembered since (itself if none). */
export function currentChannel(kv: RenameKv, server: string, channel: string): string {
  let name = channel;
  for (let hops = 0; hops < MAX_HOPS; hops++) {
    const next = kv.get(key(server, name));
    if (next === undefined) return name;
    name = next;
  }
  return name;
}
