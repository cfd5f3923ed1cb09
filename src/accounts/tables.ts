import type { Generated } from 'kysely';

export interface AccountTables {
  domains: {
    id: Generated<number>;
    uuid: string;
    name: string;
    /** `/` for ROOT, then `/<name>/` per level: a subtree is every path that starts with its root's path. */
    path: string;
    parent_id: number | null;
    level: number;
    network_domain: string | null;
    state: string;
    created: number;
  };
  accounts: {
    id: Generated<number>;
    uuid: string;
    name: string;
    domain_id: number;
    /** 0 user, 1 root admin, 2 domain admin. */
    type: number;
    state: string;
    network_domain: string | null;
    is_default: number;
    created: number;
  };
  users: {
    id: Generated<number>;
    uuid: string;
    account_id: number;
    /** Copied from the account: usernames are unique per domain, as in CloudStack. */
    domain_id: number;
    username: string;
    password_hash: string;
    firstname: string;
    lastname: string;
    email: string | null;
    timezone: string | null;
    api_key: string | null;
    /** Sealed with the server key (`sk1:…`, config/server-key.ts): HMAC verification needs the secret back. */
    secret_key: string | null;
    state: string;
    is_default: number;
    created: number;
  };
  sessions: {
    id: Generated<number>;
    /** SHA-256 of the session key: a database leak does not leak live sessions. */
    key_hash: string;
    user_id: number;
    created: number;
    last_seen: number;
    expires: number;
  };
  /** Failed logins per user or source address (accounts/login-throttle.ts, migration 0006). */
  login_failures: {
    id: Generated<number>;
    key_hash: string;
    failures: number;
    last_failure: number;
    locked_until: number;
  };
}
