// A volume restore's side copy without a second copy of what did not change. A terabyte photo
// library on a volume more than half full has no room for a whole copy beside it; yet after a bad
// upgrade or a deleted album, nearly every file is the same as in the backup. This transform sits
// between the backup's tar stream and `tar -x` into the side directory: a regular file whose live
// counterpart has the same size, mtime, mode and owner becomes a hard-link entry to the live file
// (no data written, no room taken), and its bytes from the backup are hashed as they pass, so the
// live file's content is checked against them (`sha256sum -c` in the pod). A file that fails the
// check is written from the backup in a second pass that keeps only such files (`only`).
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Writable } from 'node:stream';
import { BLOCK, bodyBytes, cstr, entryName, normalName, octal, parsePax } from './tar-scan.js';

/** A live regular file as `stat -c '%s %Y %a %u %g'` prints it: "size mtime mode(octal) uid gid". */
export type LiveListing = Map<string, string>;

/** Bytes a file takes on disk, counted against the room left: whole 4 KiB blocks. */
const onDisk = (n: number): number => Math.ceil(n / 4096) * 4096;

export interface TarLinkerOptions {
  /** Live regular files by name (without "./"); a backup file matching one is linked to it. */
  live?: LiveListing;
  /** Path, inside the extraction directory, of a symlink to the live volume's root. */
  via?: string;
  /** Second pass: only these regular files (and hard links to them) pass; everything else is dropped. */
  only?: Set<string>;
  /** Where "sha256  ./name" lines of the linked files go (its backpressure holds the stream). */
  checklist?: Writable;
  /** Bytes the written files may take on disk; beyond it the stream fails with `overBudget()`. */
  budget?: number;
  overBudget?: () => Error;
  /**
   * Called once at the archive's end marker (or its end, when it has none): no more lines come.
   * tar exits at the marker and may leave the padding after it unread, so 'finish' can be late.
   */
  onEnd?: () => void;
}

/** Names never linked: the checks' line formats cannot carry them, or tar would resolve them elsewhere. */
const linkable = (name: string): boolean => !/[\n\\]/.test(name) && !name.split('/').includes('..');

/** A header block of our own (GNU long-link 'K'), with its checksum. */
function rawHeader(name: string, type: string, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write('0000000\0', 100, 'ascii'); // mode
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  h.write('00000000000\0', 136, 'ascii');
  h.write(type, 156, 'ascii');
  h.write('ustar  \0', 257, 'ascii');
  return checksummed(h);
}

function checksummed(h: Buffer): Buffer {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

export class TarLinker extends Transform {
  private header: Buffer = Buffer.alloc(0);
  /** The current entry's extension headers (L, K, x) and their bodies, passed or dropped with it. */
  private held: Buffer[] = [];
  private meta: Buffer[] | null = null;
  private metaKind = '';
  private metaLeft = 0;
  private pending: { path?: string; size?: number; linkpath?: string } = {};
  /** Bytes of the current body still to come, and what happens to them. */
  private left = 0;
  private body: 'meta' | 'pass' | 'link' | 'drop' = 'pass';
  private hashLeft = 0;
  private hash: Hash | null = null;
  private linking = '';
  private ended = false;
  private needDrain = false;
  readonly stats = { linkedFiles: 0, linkedBytes: 0, writtenFiles: 0, writtenBytes: 0, onDisk: 0 };
  /** The backup's own hard links (name → target), so a file written again takes its other names along. */
  readonly hardLinks: Array<[string, string]> = [];

  constructor(private readonly o: TarLinkerOptions) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      this.scan(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (this.o.budget !== undefined && this.stats.onDisk > this.o.budget) {
      cb(this.o.overBudget?.() ?? new Error('the restored files do not fit'));
      return;
    }
    if (!this.needDrain) {
      cb();
      return;
    }
    this.needDrain = false;
    const list = this.o.checklist!;
    const done = (err?: Error): void => {
      list.off('drain', drained);
      list.off('close', closed);
      cb(err ?? null);
    };
    const drained = (): void => done();
    const closed = (): void => done(new Error('the check of the linked files stopped'));
    list.once('drain', drained);
    list.once('close', closed);
  }

  override _flush(cb: (err?: Error | null) => void): void {
    if (!this.ended) this.o.onEnd?.();
    cb();
  }

  private scan(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.ended) {
        this.push(chunk.subarray(pos));
        return;
      }
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - pos);
        const piece = chunk.subarray(pos, pos + n);
        if (this.body === 'meta') {
          this.held.push(piece);
          if (this.meta && this.metaLeft > 0) {
            this.meta.push(piece.subarray(0, Math.min(n, this.metaLeft)));
            this.metaLeft -= Math.min(n, this.metaLeft);
          }
        } else if (this.body === 'pass') this.push(piece);
        else if (this.body === 'link' && this.hashLeft > 0) {
          const take = Math.min(n, this.hashLeft);
          this.hash!.update(piece.subarray(0, take));
          this.hashLeft -= take;
        }
        this.left -= n;
        pos += n;
        if (this.left === 0) this.bodyDone();
        continue;
      }
      const take = Math.min(BLOCK - this.header.length, chunk.length - pos);
      this.header = this.header.length === 0 && take === BLOCK ? chunk.subarray(pos, pos + BLOCK) : Buffer.concat([this.header, chunk.subarray(pos, pos + take)]);
      pos += take;
      if (this.header.length === BLOCK) {
        const h = this.header;
        this.header = Buffer.alloc(0);
        this.onHeader(h);
      }
    }
  }

  private bodyDone(): void {
    if (this.body === 'meta') this.metaDone();
    else if (this.body === 'link') this.linkDone();
  }

  private metaDone(): void {
    if (this.meta) {
      const data = Buffer.concat(this.meta);
      if (this.metaKind === 'L') this.pending.path = data.toString('utf8').replace(/\0+$/, '');
      else if (this.metaKind === 'K') this.pending.linkpath = data.toString('utf8').replace(/\0+$/, '');
      else {
        const pax = parsePax(data);
        if (pax.path !== undefined) this.pending.path = pax.path;
        if (pax.linkpath !== undefined) this.pending.linkpath = pax.linkpath;
        if (pax.size !== undefined) this.pending.size = Number(pax.size);
      }
    }
    this.meta = null;
  }

  private linkDone(): void {
    const line = `${this.hash!.digest('hex')}  ./${this.linking}\n`;
    this.hash = null;
    if (this.o.checklist && !this.o.checklist.write(line)) this.needDrain = true;
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      this.ended = true; // the end-of-archive marker; the rest is padding
      this.push(h);
      this.o.onEnd?.();
      return;
    }
    const type = String.fromCharCode(h[156] || 0x30);
    const size = octal(h, 124, 12);
    if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
      this.held.push(h);
      this.body = 'meta';
      this.meta = type === 'g' ? null : [];
      this.metaKind = type;
      this.metaLeft = size;
      this.left = padded(size);
      if (this.left === 0) this.metaDone();
      return;
    }
    const regular = type === '0' || type === '7';
    const paxSize = this.pending.size;
    const fileSize = regular && paxSize !== undefined ? paxSize : size;
    const name = normalName(entryName(h, this.pending.path));
    const target = type === '1' ? normalName(this.pending.linkpath ?? cstr(h, 157, 100)) : '';
    this.pending = {};
    const held = this.held;
    this.held = [];
    const bytes = bodyBytes(type, fileSize);
    if (type === '1') this.hardLinks.push([name, target]);
    if (this.o.only) {
      const keep = regular ? this.o.only.has(name) : type === '1' && this.o.only.has(target);
      this.begin(keep ? [...held, h] : [], keep ? 'pass' : 'drop', bytes);
      if (keep && regular) this.written(fileSize);
      return;
    }
    const live = regular && paxSize === undefined && this.o.live && this.o.via !== undefined && linkable(name) ? this.o.live.get(name) : undefined;
    const mine = `${fileSize} ${octal(h, 136, 12)} ${(octal(h, 100, 8) & 0o7777).toString(8)} ${octal(h, 108, 8)} ${octal(h, 116, 8)}`;
    if (live === undefined || live !== mine) {
      this.begin([...held, h], 'pass', bytes);
      if (regular) this.written(fileSize);
      else this.stats.onDisk += type === '5' ? 4096 : 0;
      return;
    }
    // The same file as the live one, by its metadata: a hard link to it, its content checked later.
    const linkname = `${this.o.via}/${name}`;
    const out = [...held];
    if (Buffer.byteLength(linkname) > 100) {
      const body = Buffer.alloc(padded(Buffer.byteLength(linkname) + 1));
      body.write(linkname, 0, 'utf8');
      out.push(rawHeader('././@LongLink', 'K', Buffer.byteLength(linkname) + 1), body);
    }
    const link = Buffer.from(h);
    link.write('1', 156, 'ascii');
    link.write('00000000000\0', 124, 'ascii');
    link.fill(0, 157, 257);
    link.write(linkname, 157, 100, 'utf8');
    out.push(checksummed(link));
    this.begin(out, 'link', bytes);
    this.stats.linkedFiles++;
    this.stats.linkedBytes += fileSize;
    this.hash = createHash('sha256');
    this.hashLeft = fileSize;
    this.linking = name;
    if (bytes === 0) this.linkDone();
  }

  private begin(blocks: Buffer[], body: 'pass' | 'link' | 'drop', bytes: number): void {
    for (const b of blocks) this.push(b);
    this.body = body;
    this.left = bytes;
  }

  private written(size: number): void {
    this.stats.writtenFiles++;
    this.stats.writtenBytes += size;
    this.stats.onDisk += onDisk(size);
  }
}
