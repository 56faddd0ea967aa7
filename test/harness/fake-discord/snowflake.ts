/**
 * Snowflake IDs as Discord makes them: (ms since 2015-01-01) << 22 | worker << 17 | process << 12 | increment,
 * written as a decimal string. Made from the current time they are 19 digits long; discord.js and bridges
 * assume 17–19 digit strings (and derive timestamps from them), so the fake never invents shorter ones.
 */
export const DISCORD_EPOCH = 1_420_070_400_000n;

export class SnowflakeFactory {
  private lastMs = 0n;
  private increment = 0n;

  /** A new, strictly increasing ID (sorting IDs sorts by creation time, as with real Discord). */
  next(at: number = Date.now()): string {
    let ms = BigInt(at) - DISCORD_EPOCH;
    if (ms < this.lastMs) ms = this.lastMs;
    if (ms === this.lastMs && this.increment === 0xfffn) ms += 1n; // 4096 IDs in one ms: borrow the next ms
    if (ms !== this.lastMs) this.increment = 0n;
    this.lastMs = ms;
    this.increment = (this.increment + 1n) & 0xfffn;
    return ((ms << 22n) | (1n << 17n) | (1n << 12n) | this.increment).toString();
  }
}

/** True for a 17–19 digit decimal string, the shape of every Discord ID. */
export function isSnowflake(s: string): boolean {
  return /^\d{17,19}$/.test(s);
}

/** The creation time encoded in a snowflake, in ms since the Unix epoch. */
export function snowflakeTime(id: string): number {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}
