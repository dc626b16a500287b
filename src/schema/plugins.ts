// The plugin catalog: what the registered engine and storage plugins can do, so a frontend can
// draw its forms from the API.
import { builder } from '../builder.js';
import { databasePlugins } from '../plugins/databases/registry.js';
import type { DatabasePlugin } from '../plugins/databases/types.js';

export interface StorageBackendInfo {
  name: string;
  description: string;
  uriPrefix: string;
  credentialFields: string[];
  configFields: string[];
}

/** Filled by the storage registry once it is wired (see schema/repository.ts). */
export const storageCatalog: { list: () => readonly StorageBackendInfo[] } = { list: () => [] };

const DatabaseEnginePluginRef = builder.objectRef<DatabasePlugin>('DatabaseEnginePlugin').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description'),
    canRestore: t.exposeBoolean('canRestore'),
    canVerify: t.exposeBoolean('canVerify'),
  }),
});

const StorageBackendPluginRef = builder.objectRef<StorageBackendInfo>('StorageBackendPlugin').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description'),
    uriPrefix: t.exposeString('uriPrefix'),
    credentialFields: t.exposeStringList('credentialFields'),
    configFields: t.exposeStringList('configFields'),
  }),
});

const PluginCatalogRef = builder.objectRef<Record<string, never>>('PluginCatalog').implement({
  fields: (t) => ({
    databaseEngines: t.field({ type: [DatabaseEnginePluginRef], resolve: () => [...databasePlugins] }),
    storageBackends: t.field({ type: [StorageBackendPluginRef], resolve: () => [...storageCatalog.list()] }),
  }),
});

builder.queryField('plugins', (t) => t.field({ type: PluginCatalogRef, resolve: () => ({}) }));
