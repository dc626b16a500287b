// Reads tar headers as the bytes stream past, without buffering file contents: counts files and
// bytes and hashes the listing (name, type, mode, size, mtime) so a restore drill can compare a
// restored volume with what was backed up. Handles ustar, GNU long names and pax path/size.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

export interface TarListing {
  files: number;
  directories: number;
  /** Bytes of regular file contents. */
  bytes: number;
  /** sha256 over "type mode size mtime name\n" of every entry, in stream order. */
  listingSha256: string;
}

export const BLOCK = 512;

export function octal(buf: Buffer, off: number, len: number): number {
  const field = buf.subarray(off, off + len);
  if (field[0]! & 0x80) {
    // GNU base-256 for large values.
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const s = field.toString('ascii').replace(/\0.*$/s, '').trim();
  return s ? parseInt(s, 8) : 0;
}

export function cstr(buf: Buffer, off: number, len: number): string {
  const field = buf.subarray(off, off + len);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

/** An entry's name: one given before it (GNU long name, pax path), else its header's prefix/name. */
export function entryName(h: Buffer, given?: string): string {
  const prefix = cstr(h, 345, 155);
  return given ?? (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
}

/** A member name as listings compare it: no leading "./", no trailing "/". */
export const normalName = (name: string): string => name.replace(/^\.\//, '').replace(/\/$/, '');

/** The archive bytes of an entry's body: whole blocks, none for a directory, symlink or hard link. */
export function bodyBytes(type: string, size: number): number {
  return type === '5' || type === '2' || type === '1' ? 0 : Math.ceil(size / BLOCK) * BLOCK;
}

export function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = parseInt(data.subarray(pos, sp).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const rec = data.subarray(sp + 1, pos + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    pos += len;
  }
  return out;
}

/** A pass-through stream that fills `listing` as tar bytes flow; `done()` gives the result at the end. */
export class TarScanner extends Transform {
  private header = Buffer.alloc(0);
  private skip = 0; // content bytes (plus padding) still to pass before the next header
  private meta: Buffer[] | null = null; // collecting a long-name or pax body
  private metaKind: 'L' | 'x' | null = null;
  private metaLeft = 0;
  private pending: { path?: string; size?: number } = {};
  private readonly hash = createHash('sha256');
  private ended = false;
  readonly listing: Omit<TarListing, 'listingSha256'> = { files: 0, directories: 0, bytes: 0 };
  /** The archive's bytes that have passed. */
  archiveBytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.archiveBytes += chunk.length;
    this.scan(chunk);
    cb(null, chunk);
  }

  private scan(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - pos);
        if (this.meta && this.metaLeft > 0) {
          const take = Math.min(n, this.metaLeft);
          this.meta.push(chunk.subarray(pos, pos + take));
          this.metaLeft -= take;
        }
        this.skip -= n;
        pos += n;
        if (this.skip === 0 && this.meta) this.finishMeta();
        continue;
      }
      const need = BLOCK - this.header.length;
      const take = Math.min(need, chunk.length - pos);
      this.header = Buffer.concat([this.header, chunk.subarray(pos, pos + take)]);
      pos += take;
      if (this.header.length === BLOCK) {
        this.onHeader(this.header);
        this.header = Buffer.alloc(0);
      }
    }
  }

  private finishMeta(): void {
    const body = Buffer.concat(this.meta ?? []);
    if (this.metaKind === 'L') this.pending.path = body.toString('utf8').replace(/\0+$/, '');
    else if (this.metaKind === 'x') {
      const pax = parsePax(body);
      if (pax.path) this.pending.path = pax.path;
      if (pax.size) this.pending.size = Number(pax.size);
    }
    this.meta = null;
    this.metaKind = null;
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      this.ended = true; // end-of-archive marker; the rest is padding
      return;
    }
    const type = String.fromCharCode(h[156] || 0x30);
    let size = octal(h, 124, 12);
    if ((type === '0' || type === '\0' || type === '7') && this.pending.size !== undefined) size = this.pending.size;
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L' || type === 'x') {
      this.meta = [];
      this.metaKind = type;
      this.metaLeft = size;
      this.skip = padded;
      if (padded === 0) this.finishMeta();
      return;
    }
    if (type === 'g') {
      this.skip = padded;
      return;
    }
    const name = entryName(h, this.pending.path);
    const mode = octal(h, 100, 8) & 0o7777;
    const mtime = octal(h, 136, 12);
    this.pending = {};
    if (type === '0' || type === '7') {
      this.listing.files++;
      this.listing.bytes += size;
    } else if (type === '5') this.listing.directories++;
    const kind = type === '0' || type === '7' ? 'f' : type === '5' ? 'd' : type === '2' ? 'l' : type;
    this.hash.update(`${kind} ${mode.toString(8)} ${kind === 'f' ? size : 0} ${mtime} ${normalName(name)}\n`);
    this.skip = bodyBytes(type, size);
  }

  /** The end-of-archive marker went past: the archive is whole. */
  get complete(): boolean {
    return this.ended;
  }

  result(): TarListing {
    return { ...this.listing, listingSha256: this.hash.copy().digest('hex') };
  }
}
