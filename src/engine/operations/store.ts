// Persistence of operation records: one JSON file per operation, written atomically, and an
// append-only output.log beside it.
import { appendFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DataPaths } from '../../wild/paths.js';
import { writeFileAtomic } from '../../wild/writer.js';
import { OPERATION_KINDS, OPERATION_STATUSES, type OperationRecord } from './types.js';
import { logger } from '../../util/log.js';

const log = logger('operations');
const ID = /^op-[a-z0-9]+-[a-f0-9]+$/;

export class OperationStore {
  /** The last append under way, per log file (see appendLog). */
  private readonly appending = new Map<string, Promise<void>>();

  constructor(private readonly paths: DataPaths) {}

  private file(rec: Pick<OperationRecord, 'instanceName' | 'id'>): string {
    return path.join(this.paths.operationsDir(rec.instanceName), `${rec.id}.json`);
  }

  logFile(rec: Pick<OperationRecord, 'instanceName' | 'id'>): string {
    return path.join(this.paths.operationsDir(rec.instanceName), rec.id, 'output.log');
  }

  /**
   * Writes the record as it is now. The writes of one record land in the order asked
   * (writeFileAtomic): a progress write begun before a recovery write (a restore marking a side as
   * being swapped in) never puts the older state back on disk, where a start-up recovery reads it.
   */
  async save(rec: OperationRecord): Promise<void> {
    await writeFileAtomic(this.file(rec), JSON.stringify(rec, null, 2) + '\n', 0o644);
  }

  /**
   * Appends lines to the record's output.log. Appends to one log land in the order asked, each
   * after the one before (two appendFile calls in flight at once may land either way round), so
   * the returned promise also means every earlier append of that log is on disk.
   */
  appendLog(rec: OperationRecord, lines: string[]): Promise<void> {
    const file = this.logFile(rec);
    const write = async (): Promise<void> => {
      await mkdir(path.dirname(file), { recursive: true });
      await appendFile(file, lines.map((l) => l + '\n').join(''));
    };
    const prev = this.appending.get(file);
    const next = prev ? prev.then(write, write) : write();
    this.appending.set(file, next);
    const forget = (): void => { if (this.appending.get(file) === next) this.appending.delete(file); };
    next.then(forget, forget);
    return next;
  }

  /** Removes the record and its log (after any append still under way to it). */
  async remove(rec: Pick<OperationRecord, 'instanceName' | 'id'>): Promise<void> {
    await this.appending.get(this.logFile(rec))?.catch(() => undefined);
    await rm(this.file(rec), { force: true });
    await rm(path.dirname(this.logFile(rec)), { recursive: true, force: true });
  }

  async readLogTail(rec: OperationRecord, last: number): Promise<string[]> {
    try {
      const lines = (await readFile(this.logFile(rec), 'utf8')).split('\n');
      if (lines.at(-1) === '') lines.pop();
      return lines.slice(-last);
    } catch {
      return [];
    }
  }

  /** Every well-formed record of an instance; malformed files are logged and skipped. */
  async loadInstance(instance: string): Promise<OperationRecord[]> {
    const dir = this.paths.operationsDir(instance);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    const out: OperationRecord[] = [];
    for (const name of names) {
      if (!name.endsWith('.json') || !ID.test(name.slice(0, -5))) continue;
      try {
        const rec = JSON.parse(await readFile(path.join(dir, name), 'utf8')) as OperationRecord;
        if (rec.instanceName !== instance || !OPERATION_KINDS.includes(rec.kind) || !OPERATION_STATUSES.includes(rec.status)) {
          throw new Error('not an operation record');
        }
        out.push(rec);
      } catch (err) {
        log.warn('skipping unreadable operation record', { file: path.join(dir, name), error: (err as Error).message });
      }
    }
    return out;
  }
}

export function isOperationId(value: string): boolean {
  return ID.test(value);
}
