// The `config` artifact of an app backup: its slices of config.yaml and secrets.yaml (apps.<app>)
// and its compiled app directory, as a small tar.
import { stringify } from 'yaml';
import type { ArtifactSource } from '../../engine/backup/source.js';
import type { AppInfo, WildStore } from '../../wild/store.js';
import { directoryEntries, tarStream } from './tar.js';

export function appConfigSource(store: WildStore, app: AppInfo): ArtifactSource {
  const build = async () => {
    const secrets = await store.secrets(app.instance);
    const entries = [
      { name: 'config.yaml', content: stringify({ apps: { [app.name]: app.config } }) },
      { name: 'secrets.yaml', content: stringify({ apps: { [app.name]: secrets.apps?.[app.name] ?? {} } }) },
      ...(await directoryEntries(app.dir, 'app')),
    ];
    return entries;
  };
  return {
    artifact: { kind: 'config', name: app.name },
    extension: '.tar',
    async estimate() {
      const entries = await build();
      return entries.reduce((n, e) => n + 512 + Math.ceil(Buffer.byteLength(e.content) / 512) * 512, 1024);
    },
    async open() {
      const entries = await build();
      return { stream: tarStream(entries), finished: Promise.resolve({ files: entries.length }) };
    },
  };
}
