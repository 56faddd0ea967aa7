'use strict';
// Stand-in for @matrix-org/matrix-sdk-crypto-nodejs (installed through npm "overrides" in the
// root package.json). The real package downloads a native library from GitHub at install time,
// which this project's machines cannot reach. matrix-appservice-bridge (through matrix-bot-sdk)
// requires it at load time but only uses it when end-to-end encryption is switched on, which
// Trestle never does. Requiring this module therefore succeeds; touching anything it exports throws.
const MESSAGE =
  'end-to-end encryption is not available in Trestle: @matrix-org/matrix-sdk-crypto-nodejs is a stand-in ' +
  '(see README, "Why a crypto stand-in")';

class EncryptionUnavailableError extends Error {
  constructor(what) {
    super(`${MESSAGE} (used: ${String(what)})`);
    this.name = 'EncryptionUnavailableError';
  }
}

function unavailable(name) {
  // A class-like function: calling it, constructing it or reading its static members all throw.
  const target = function () { throw new EncryptionUnavailableError(name); };
  return new Proxy(target, {
    construct() { throw new EncryptionUnavailableError(name); },
    apply() { throw new EncryptionUnavailableError(name); },
    get(t, prop) {
      if (prop === 'prototype' || prop === 'name' || prop === 'length') return Reflect.get(t, prop);
      if (typeof prop === 'symbol') return undefined;
      throw new EncryptionUnavailableError(`${name}.${prop}`);
    },
  });
}

module.exports = new Proxy({ EncryptionUnavailableError, isStandIn: true }, {
  get(t, prop) {
    if (prop in t) return t[prop];
    if (typeof prop === 'symbol' || prop === 'then' || prop === '__esModule' || prop === 'default') return undefined;
    return unavailable(String(prop));
  },
});
