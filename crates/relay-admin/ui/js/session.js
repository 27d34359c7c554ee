// The signed-in session, kept in sessionStorage (per tab, gone when the tab closes; never in a
// URL): the tenant token the pages work with, the operator token that minted it (if any), and
// the tenant's name for the header. Tokens are decoded here only to read their role and tenant;
// the relay is the one that checks them.

const KEYS = { token: 'wap-relay.token', operator: 'wap-relay.operator', tenant: 'wap-relay.tenant' };

/** Decodes a JWT's claims without verifying it, or null when it is not a JWT. */
export function claims(token) {
  const part = String(token).split('.')[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

function read(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key, value) {
  if (value == null) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, value);
}

export const session = {
  /** The tenant token every tenant route is called with. */
  get token() {
    return read(KEYS.token);
  },
  /** The operator token, while an operator works as a tenant. */
  get operatorToken() {
    return read(KEYS.operator);
  },
  /** `{id, name, plan}` of the tenant, for the header. */
  get tenant() {
    try {
      return JSON.parse(read(KEYS.tenant) || 'null');
    } catch {
      return null;
    }
  },
  get signedIn() {
    return Boolean(this.token);
  },
  setTenant(token, tenant) {
    write(KEYS.token, token);
    write(KEYS.tenant, JSON.stringify({ id: tenant.id, name: tenant.name, plan: tenant.plan }));
  },
  setOperator(token) {
    write(KEYS.operator, token);
    write(KEYS.token, null);
    write(KEYS.tenant, null);
  },
  clear() {
    Object.values(KEYS).forEach((key) => write(key, null));
  },
};

/** A message for the next sign-in page (why the session ended), shown once; `kind` as notice(). */
let flash = null;
export function setFlash(message, kind = 'warn') {
  flash = { message, kind };
}
export function takeFlash() {
  const message = flash;
  flash = null;
  return message;
}
