// Cursor connections over an ordered list (the contract's *Connection types).
import type { ObjectRef } from '@pothos/core';
import { builder } from '../builder.js';

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

export interface Connection<T> {
  edges: Array<{ cursor: string; node: T }>;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  totalCount: number;
}

export const MAX_PAGE = 500;
export const DEFAULT_PAGE = 50;

/** Cursors are base64url of the item's stable key; `after` an unknown cursor starts from the beginning. */
export function connectionOf<T>(items: readonly T[], args: PageArgs, keyOf: (item: T) => string): Connection<T> {
  const first = Math.min(Math.max(args.first ?? DEFAULT_PAGE, 0), MAX_PAGE);
  let start = 0;
  if (args.after) {
    const key = Buffer.from(args.after, 'base64url').toString('utf8');
    const i = items.findIndex((it) => keyOf(it) === key);
    start = i >= 0 ? i + 1 : 0;
  }
  const slice = items.slice(start, start + first);
  const edges = slice.map((node) => ({ cursor: Buffer.from(keyOf(node), 'utf8').toString('base64url'), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: start + slice.length < items.length,
      hasPreviousPage: start > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
    totalCount: items.length,
  };
}

export const PageInfoRef = builder.objectRef<Connection<unknown>['pageInfo']>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    hasPreviousPage: t.exposeBoolean('hasPreviousPage'),
    startCursor: t.exposeString('startCursor', { nullable: true }),
    endCursor: t.exposeString('endCursor', { nullable: true }),
  }),
});

/** Defines `<Name>Connection` and `<Name>Edge` for a node type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function defineConnection<T extends object>(name: string, nodeRef: ObjectRef<any, T>) {
  const Edge = builder.objectRef<Connection<T>['edges'][number]>(`${name}Edge`).implement({
    fields: (t) => ({
      cursor: t.exposeString('cursor'),
      node: t.field({ type: nodeRef, resolve: (e) => e.node as never }),
    }),
  });
  return builder.objectRef<Connection<T>>(`${name}Connection`).implement({
    fields: (t) => ({
      edges: t.field({ type: [Edge], resolve: (c) => c.edges }),
      pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
      totalCount: t.exposeInt('totalCount'),
    }),
  });
}
