// Global object identification: Node IDs are base64url("<Type>:<key>"), opaque to clients.
import { builder } from '../builder.js';

export type NodeType = 'Instance' | 'App' | 'Operation' | 'Backup' | 'Snapshot';

export function encodeGlobalId(type: NodeType, key: string): string {
  return Buffer.from(`${type}:${key}`, 'utf8').toString('base64url');
}

export function decodeGlobalId(id: string): { type: NodeType; key: string } | null {
  if (id.length > 512 || !/^[A-Za-z0-9_-]+$/.test(id)) return null;
  const text = Buffer.from(id, 'base64url').toString('utf8');
  const i = text.indexOf(':');
  if (i < 0) return null;
  const type = text.slice(0, i);
  if (!['Instance', 'App', 'Operation', 'Backup', 'Snapshot'].includes(type)) return null;
  return { type: type as NodeType, key: text.slice(i + 1) };
}

/** Each node-backed object type registers how to fetch one of its objects by key. */
export const nodeLoaders = new Map<NodeType, (key: string, ctx: import('../context.js').GraphQLContext) => Promise<object | null>>();

export const NodeInterface = builder.interfaceRef<object>('Node').implement({
  fields: (t) => ({
    id: t.id({ resolve: () => { throw new Error('Node.id is resolved by each type'); } }),
  }),
});

builder.queryField('node', (t) =>
  t.field({
    type: NodeInterface,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      const decoded = decodeGlobalId(String(id));
      if (!decoded) return null;
      const load = nodeLoaders.get(decoded.type);
      return load ? load(decoded.key, ctx) : null;
    },
  }),
);
