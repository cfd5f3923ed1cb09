/**
 * Which passwords the guests have acknowledged (`saved_password`, reference §4.7), kept across agent restarts in
 * `saved-passwords.json`. Only a digest of address and password is stored: a new password for the address
 * (resetPasswordForVirtualMachine) is not acknowledged by an old acknowledgement.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeAtomic } from './system.js';

function passwordDigest(ip: string, password: string): string {
  return createHash('sha256').update(`${ip}\0${password}`).digest('hex');
}

export class PasswordAcks {
  /** Guest address → digest of the password the guest acknowledged. */
  private saved = new Map<string, string>();

  constructor(private readonly file: string) {}

  load(): void {
    try {
      this.saved = new Map(
        Object.entries(JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, string>),
      );
    } catch {
      /* nothing acknowledged yet */
    }
  }

  private isAcked(ip: string, password: string): boolean {
    return this.saved.get(ip) === passwordDigest(ip, password);
  }

  /** The password of `ip` in `passwords` unless the guest acknowledged it (then null: `saved_password`). */
  passwordFor(passwords: Record<string, string>, ip: string): string | null {
    const pw = passwords[ip];
    return pw === undefined || this.isAcked(ip, pw) ? null : pw;
  }

  /** The guest at `ip` stored its password in `passwords`: never serve that one again. */
  ack(passwords: Record<string, string>, ip: string): void {
    const pw = passwords[ip];
    if (pw === undefined || this.isAcked(ip, pw)) return;
    this.saved.set(ip, passwordDigest(ip, pw));
    this.persist();
  }

  /** Addresses of `passwords` whose password was acknowledged (sorted). */
  ackedOf(passwords: Record<string, string>): string[] {
    return Object.entries(passwords)
      .filter(([ip, pw]) => this.isAcked(ip, pw))
      .map(([ip]) => ip)
      .sort();
  }

  /**
   * Forget acknowledgements of passwords the state no longer has: the server dropped them after the report, or
   * replaced them (resetPasswordForVirtualMachine: a new password for the address is served until acknowledged).
   */
  prune(passwords: Record<string, string>): void {
    let changed = false;
    for (const [ip, digest] of this.saved) {
      const pw = passwords[ip];
      if (pw === undefined || passwordDigest(ip, pw) !== digest) {
        this.saved.delete(ip);
        changed = true;
      }
    }
    if (changed) this.persist();
  }

  private persist(): void {
    writeAtomic(this.file, JSON.stringify(Object.fromEntries(this.saved)));
  }
}
