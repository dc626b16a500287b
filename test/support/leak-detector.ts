// The pure core of the secret-leak harness: a registry of secret values (and of harmless canaries
// that prove an observation channel is wired) and a scanner that finds any of them in a text.
// It never reports a secret itself: findings carry a hint (length and hash) and a redacted excerpt.
import { createHash } from 'node:crypto';

export type SecretKind = 'secret' | 'canary';

export interface SecretMatch {
  kind: SecretKind;
  /** `len 24, sha256 1a2b3c4d`: enough to find the value in a fixture, not enough to use it. */
  hint: string;
  /** The text around the first match, with every registered value replaced by «…». */
  excerpt: string;
}

/** Plain words and values that occur in ordinary text; registering them would only cause noise. */
const COMMON = new Set(['password', 'postgres', 'changeme', 'localhost', 'example', 'mariadb', 'wildbackup', 'undefined', 'secret', 'default']);

/**
 * Whether a value is specific enough to look for: at least 8 characters, not one plain word,
 * not a run of one or two characters (`'x'.repeat(40)`), not a number.
 */
export function isSecretWorthScanning(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const v = value.trim();
  if (v.length < 8) return false;
  if (COMMON.has(v.toLowerCase())) return false;
  if (/^[a-z]{1,11}$/i.test(v) || /^\d{1,15}$/.test(v)) return false;
  if (new Set(v).size < 4) return false;
  return true;
}

export function secretHint(value: string): string {
  return `len ${value.length}, sha256 ${createHash('sha256').update(value).digest('hex').slice(0, 8)}`;
}

/** The forms a value takes in the texts we read: itself, URL-encoded, JSON-escaped, one line of a key. */
export function secretForms(value: string): string[] {
  const forms = new Set([value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1)]);
  if (value.includes('\n')) {
    // A PEM or OpenSSH key: its body lines are secret on their own; the armour lines are not.
    for (const line of value.split(/\r?\n/)) if (line.length >= 16 && !line.startsWith('-----')) forms.add(line.trim());
  }
  return [...forms].filter((f) => f.length >= 8);
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class LeakDetector {
  private readonly entries = new Map<string, { kind: SecretKind; hint: string }>();
  /** form -> the value it belongs to */
  private readonly forms = new Map<string, string>();
  private pattern: RegExp | null = null;

  /** Registers a value; false when it was already known or is not worth scanning for. */
  add(value: unknown, kind: SecretKind = 'secret'): boolean {
    if (!isSecretWorthScanning(value) || this.entries.has(value)) return false;
    // A canary that is also a secret stays a secret.
    this.entries.set(value, { kind, hint: secretHint(value) });
    for (const f of secretForms(value)) if (!this.forms.has(f)) this.forms.set(f, value);
    this.pattern = null;
    return true;
  }

  /** Forgets a value (a test showed it is ordinary data, see `registerPlainValue`). */
  remove(value: string): boolean {
    if (!this.entries.delete(value)) return false;
    for (const [f, v] of this.forms) if (v === value) this.forms.delete(f);
    for (const v of this.entries.keys()) for (const f of secretForms(v)) if (!this.forms.has(f)) this.forms.set(f, v);
    this.pattern = null;
    return true;
  }

  has(value: string): boolean {
    return this.entries.has(value);
  }

  get size(): number {
    return this.entries.size;
  }

  private regex(): RegExp | null {
    if (this.forms.size === 0) return null;
    // Longest first, so that a value containing another one is reported as itself.
    this.pattern ??= new RegExp([...this.forms.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'g');
    return this.pattern;
  }

  /** Every registered value (one match per value) that occurs in the text. */
  scan(text: string, only?: ReadonlySet<string>): SecretMatch[] {
    const re = this.regex();
    if (!re || text.length < 8) return [];
    re.lastIndex = 0;
    const seen = new Set<string>();
    const out: SecretMatch[] = [];
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const value = this.forms.get(m[0])!;
      if (seen.has(value) || (only && !only.has(value))) continue;
      seen.add(value);
      const e = this.entries.get(value)!;
      out.push({ kind: e.kind, hint: e.hint, excerpt: this.excerpt(text, m.index, m[0].length, e.hint) });
    }
    return out;
  }

  /** ±80 characters around a match, redacted (a wider window first, so no value is cut in half). */
  private excerpt(text: string, index: number, length: number, hint: string): string {
    const start = Math.max(0, index - 240);
    const window = this.redact(text.slice(start, index + length + 240));
    const at = window.indexOf(`«${hint}»`);
    const from = Math.max(0, at - 80);
    return window.slice(from, at + hint.length + 2 + 80).replace(/\s+/g, ' ');
  }

  /** The text with every registered value (in any of its forms) replaced by «len …, sha256 …». */
  redact(text: string): string {
    const re = this.regex();
    if (!re) return text;
    return text.replace(new RegExp(re.source, 'g'), (f) => `«${this.entries.get(this.forms.get(f)!)!.hint}»`);
  }
}
