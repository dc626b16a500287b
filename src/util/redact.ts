// Secret redaction: every message we keep (logs, errors, operation records) passes through here.

const REDACTED = '***';

/** A set of secret values whose text must never leave the process. */
export class SecretSet {
  private readonly values = new Set<string>();

  add(...secrets: Array<string | undefined | null>): this {
    for (const s of secrets) {
      // Very short values would redact ordinary words; a real secret is never that short.
      if (s && s.length >= 4) this.values.add(s);
    }
    return this;
  }

  merge(other: SecretSet): this {
    for (const v of other.values) this.values.add(v);
    return this;
  }

  get size(): number {
    return this.values.size;
  }

  /** Replaces every occurrence of every secret (and of their URL-encoded forms) with ***. */
  redact(text: string): string {
    let out = text;
    // Longest first, so a secret that contains another is replaced whole.
    const sorted = [...this.values].sort((a, b) => b.length - a.length);
    for (const v of sorted) {
      for (const form of new Set([v, encodeURIComponent(v)])) {
        if (out.includes(form)) out = out.split(form).join(REDACTED);
      }
    }
    return out;
  }
}

/** Replaces user:password@ in URLs (rest:https://user:pw@host/...) with user:***@. */
export function redactUrlCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+):[^\s/@]+@/gi, `$1:${REDACTED}@`);
}
