// Cursor connections over an ordered list (the contract's *Connection types).
import type { ObjectRef } from '@pothos/core';
import { builder } from '../builder.js';
import { ValidationError } from '../errors.js';

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
/** The description of every connection's `first` argument. */
export const FIRST_DESCRIPTION = `Items on the page: ${DEFAULT_PAGE} unless given, at most ${MAX_PAGE}; 0 answers only totalCount and pageInfo. A negative number is refused.`;

/** An item's place in a list sorted newest first: its creation time, then its id (both compared as strings). */
export type Position = readonly [createdAt: string, id: string];

function comparePositions(a: Position, b: Position): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] === b[1] ? 0 : a[1] < b[1] ? -1 : 1;
}

const encodeCursor = (p: Position): string => Buffer.from(JSON.stringify(p), 'utf8').toString('base64url');

function decodeCursor(cursor: string): Position {
  let p: unknown;
  try {
    p = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    p = undefined;
  }
  if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => typeof v === 'string')) {
    throw new ValidationError('after: not a cursor of this list (use an edge\'s cursor or pageInfo.endCursor)', [{ path: 'after', message: 'not a cursor of this list' }]);
  }
  return [p[0] as string, p[1] as string];
}

/**
 * A page of `items`, sorted newest first by `positionOf`. A cursor holds its item's position, so
 * `after` a cursor whose item is gone meanwhile (a backup removed by retention, an operation record
 * dropped from the history) the page starts at the next item after that place: a client paging
 * down never starts over nor sees an item twice. A cursor that is not one of ours is an error.
 */
export function connectionOf<T>(items: readonly T[], args: PageArgs, positionOf: (item: T) => Position): Connection<T> {
  if (args.first != null && args.first < 0) {
    throw new ValidationError(`first: ${args.first} is not a page size (give 0 or more; at most ${MAX_PAGE} items are returned per page)`, [{ path: 'first', message: 'must be 0 or more' }]);
  }
  const first = Math.min(args.first ?? DEFAULT_PAGE, MAX_PAGE);
  let start = 0;
  if (args.after) {
    const after = decodeCursor(args.after);
    const i = items.findIndex((it) => comparePositions(positionOf(it), after) < 0);
    start = i >= 0 ? i : items.length;
  }
  const slice = items.slice(start, start + first);
  const edges = slice.map((node) => ({ cursor: encodeCursor(positionOf(node)), node }));
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
