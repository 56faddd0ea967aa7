/** Discord API failures as core understands them. */
import { DeliveryError } from '@trestle/core';
import { discordStatus } from './webhooks.js';

/** A Discord API failure as core understands it: a client error is permanent, the rest is retried. */
export function toDeliveryError(err: unknown, what: string): DeliveryError {
  if (err instanceof DeliveryError) return err;
  const status = discordStatus(err);
  const message = err instanceof Error ? err.message : String(err);
  const permanent = status !== undefined && status >= 400 && status < 500 && status !== 429;
  return new DeliveryError(`Discord ${permanent ? 'refused' : 'did not take'} the ${what}: ${message}`, permanent, { cause: err });
}
