// client-node costs ~80 MiB of RSS when loaded; we use only its types. A value import anywhere in
// src/ would bring that back (and break Node 20: its undici needs Node 22), so none may exist.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('@kubernetes/client-node', () => {
  it('is imported for types only in src/', async () => {
    const offenders: string[] = [];
    for (const file of await sources(path.resolve(import.meta.dirname, '../../src'))) {
      const text = await readFile(file, 'utf8');
      for (const m of text.matchAll(/^import\s+(type\s+)?[^;]*from\s+'@kubernetes\/client-node[^']*';/gm)) {
        if (!m[1]) offenders.push(`${path.relative(process.cwd(), file)}: ${m[0].slice(0, 80)}`);
      }
      if (/import\(\s*'@kubernetes\/client-node/.test(text)) offenders.push(`${file}: dynamic import`);
    }
    expect(offenders).toEqual([]);
  });
});
