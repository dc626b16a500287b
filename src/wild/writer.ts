// Writing config.yaml and secrets.yaml: edits go through the YAML document model (comments and
// unrelated keys survive), the new text replaces the old atomically (temp file + rename), and
// writers of one file are serialised by a lock file that also works across processes.
import { open, readFile, rename, unlink, writeFile, chmod, mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { isCollection, isMap, parseDocument, type Document } from 'yaml';
import { ConfigFileError } from '../errors.js';
import { MAX_YAML_BYTES } from './yaml-file.js';

const LOCK_TIMEOUT_MS = 10_000;
const STALE_LOCK_MS = 60_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Holds `<file>.lock` while fn runs. A lock whose owner died, or older than a minute, is broken. */
export async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lockPath = `${file}.lock`;
  await mkdir(path.dirname(file), { recursive: true });
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      await fh.writeFile(`${process.pid} ${Date.now()}\n`);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const [pidText, sinceText] = (await readFile(lockPath, 'utf8').catch(() => '')).trim().split(' ');
      const pid = Number(pidText);
      const since = Number(sinceText);
      const stale = (pid > 0 && pid !== process.pid && !pidAlive(pid)) || (since > 0 && Date.now() - since > STALE_LOCK_MS);
      if (stale) {
        await unlink(lockPath).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${path.basename(file)} is locked by another writer (${lockPath})`);
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

/** Each file's writes in flight in this process, one after the other (see writeFileAtomic). */
const writing = new Map<string, Promise<void>>();

/**
 * Writes data to file through a temp file in the same directory, fsync, then rename. Writes of one
 * file land in the order they were asked: two in flight at once could finish in either order and
 * leave the older data on disk (an operation record's progress over its recovery state, an older
 * schedule state over a newer one).
 */
export function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const before = writing.get(file) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(() => writeNow(file, data, mode));
  writing.set(file, mine);
  void mine.catch(() => undefined).then(() => { if (writing.get(file) === mine) writing.delete(file); });
  return mine;
}

async function writeNow(file: string, data: string, mode: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await chmod(tmp, mode); // the umask may have narrowed or (never) widened it
    const fh = await open(tmp, 'r+');
    await fh.sync();
    await fh.close();
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dir = await open(path.dirname(file), 'r').catch(() => undefined);
  await dir?.sync().catch(() => undefined);
  await dir?.close();
}

export type YamlEdit = (doc: Document) => void;

/**
 * Applies `edit` to the YAML document in `file` (created if missing) under the file's lock.
 * The file keeps its comments, key order and unrelated keys. `mode` is enforced (0600 for secrets).
 */
export async function updateYamlFile(file: string, edit: YamlEdit, mode: number): Promise<void> {
  await withFileLock(file, async () => {
    const doc = await readEditable(file);
    edit(doc);
    await writeFileAtomic(file, doc.toString(), mode);
  });
}

/**
 * Throws the ConfigFileError that updateYamlFile would, and writes nothing: a change that spans two
 * files checks the second before it writes the first.
 */
export async function checkEditable(file: string): Promise<void> {
  await readEditable(file);
}

/** The document in `file` (empty when it is missing); a ConfigFileError when editing it would lose what its author wrote. */
async function readEditable(file: string): Promise<Document> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text.length > MAX_YAML_BYTES) throw new ConfigFileError(path.basename(file), [{ path: '', message: 'file too large to edit' }]);
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    // Never overwrite a file we cannot parse: that would lose what the user wrote.
    throw new ConfigFileError(path.basename(file), doc.errors.map((e) => ({ path: '', message: (e.message.split('\n')[0] ?? '').replace(/:$/, '') })));
  }
  if (doc.contents !== null && !isMap(doc.contents)) {
    throw new ConfigFileError(path.basename(file), [{ path: '', message: 'top level is not a mapping' }]);
  }
  return doc as unknown as Document;
}

/**
 * Sets (or, with undefined, deletes) a value at a key path; nested maps are created as needed.
 * An empty flow map on the way (`backup: {}`) becomes a block map once it holds something: yaml
 * keeps a collection's style, and everything written into it would come out in braces, in a file
 * people edit by hand. A flow map that held something already keeps the style its author chose.
 */
export function setPath(doc: Document, keys: string[], value: unknown): void {
  if (value === undefined) {
    if (doc.hasIn(keys)) doc.deleteIn(keys);
    return;
  }
  const emptyFlow = [];
  for (let n = 1; n < keys.length; n++) {
    const node = doc.getIn(keys.slice(0, n), true);
    if (isCollection(node) && node.flow && node.items.length === 0) emptyFlow.push(node);
  }
  doc.setIn(keys, value);
  for (const node of emptyFlow) node.flow = false;
}
