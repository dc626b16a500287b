// The served schema against shared/schema-contract.graphql, and schema.graphql against the
// served schema. PENDING lists what later issues still have to deliver; it must only shrink:
// an entry that is no longer a gap fails the test too, so the list stays honest.
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { buildSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../../src/schema/index.js';
import { printedSchema } from '../../scripts/print-schema.js';
import { contractGaps } from './contract-diff.js';

/**
 * shared/ beside the project; in a clone made elsewhere (a fresh clone for CI in a temporary
 * directory), shared/ beside the checkout it was cloned from.
 */
function contractPath(): string {
  const project = path.resolve(import.meta.dirname, '../..');
  const beside = (dir: string) => path.resolve(dir, '../shared/schema-contract.graphql');
  if (existsSync(beside(project))) return beside(project);
  const origin = spawnSync('git', ['-C', project, 'config', '--get', 'remote.origin.url'], { encoding: 'utf8' }).stdout.trim();
  return origin && path.isAbsolute(origin) && existsSync(beside(origin)) ? beside(origin) : beside(project);
}
const CONTRACT = contractPath();

/**
 * Contract names not served yet, by the issue that delivers them. Empty: the whole contract is
 * served, and any gap now fails the test.
 */
const PENDING: Record<string, string[]> = {};

describe('schema contract', () => {
  it('finds shared/schema-contract.graphql beside the project (or beside the checkout it was cloned from)', () => {
    expect(existsSync(CONTRACT), `${CONTRACT} is missing`).toBe(true);
  });

  it('serves every name of the contract except those pending, and every pending name is still a gap', () => {
    const gaps = contractGaps(schema, readFileSync(CONTRACT, 'utf8'));
    const pending = new Set(Object.values(PENDING).flat());
    const unexpected = [...gaps].filter(([name]) => !pending.has(name)).map(([n, why]) => `${n}: ${why}`);
    expect(unexpected, 'contract names the served schema lacks or types incompatibly').toEqual([]);
    const delivered = [...pending].filter((name) => !gaps.has(name));
    expect(delivered, 'served now: remove these from PENDING').toEqual([]);
    console.log(`contract: ${pending.size} names pending (${Object.entries(PENDING).map(([k, v]) => `${k}: ${v.length}`).join(', ')})`);
  });

  it('the checker itself catches a missing field, a wrong type and a missing enum value', () => {
    const sdl = 'type Query { a: String! b(x: Int!): Int } enum E { X Y }';
    const served = `type Query { a: String b(x: Int!, y: Int!): Int } enum E { X }`;
    const gaps = contractGaps(buildSchema(served), sdl);
    expect([...gaps.keys()].sort()).toEqual(['E.Y', 'Query.a', 'Query.b(y)']);
  });

  it('schema.graphql is the printed served schema (run `npm run schema:print` after changing the schema)', () => {
    const committed = readFileSync(path.resolve(import.meta.dirname, '../../schema.graphql'), 'utf8');
    expect(committed === printedSchema(), 'schema.graphql drifted from the served schema').toBe(true);
  });
});
