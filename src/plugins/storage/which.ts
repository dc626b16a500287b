// Finds a program on PATH (sshpass, rclone) without spawning a shell.
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

const found = new Map<string, Promise<string | undefined>>();

/** The absolute path of `name` on PATH, or undefined; cached per name for the process. */
export function findExecutable(name: string): Promise<string | undefined> {
  let hit = found.get(name);
  if (!hit) {
    hit = (async () => {
      for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
        if (!dir) continue;
        const candidate = join(dir, name);
        try {
          await access(candidate, constants.X_OK);
          return candidate;
        } catch {
          // not here
        }
      }
      return undefined;
    })();
    found.set(name, hit);
  }
  return hit;
}
