// Cursor pages over lists sorted newest first: a page after an item that is gone meanwhile
// continues where that item was (retention removes backups, the history drops old operations).
import { describe, expect, it } from 'vitest';
import { connectionOf, DEFAULT_PAGE, MAX_PAGE, type Connection } from '../../src/schema/pagination.js';
import { ValidationError } from '../../src/errors.js';

interface Item { createdAt: string; id: string }
const at = (minute: number, id: string): Item => ({ createdAt: `2026-11-28T10:${String(minute).padStart(2, '0')}:00.000Z`, id });
const pos = (i: Item) => [i.createdAt, i.id] as const;
const ids = (c: { edges: Array<{ node: Item }> }) => c.edges.map((e) => e.node.id);

// Newest first; two items share a creation time and are ordered by id, descending.
const list: Item[] = [at(50, 'f'), at(40, 'e'), at(30, 'd'), at(30, 'c'), at(20, 'b'), at(10, 'a')];

describe('connectionOf', () => {
  it('pages through the list in order, each item once', () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const page: Connection<Item> = connectionOf(list, { first: 4, after }, pos);
      seen.push(...ids(page));
      expect(page.totalCount).toBe(6);
      expect(page.pageInfo.hasPreviousPage).toBe(after !== null);
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(seen).toEqual(['f', 'e', 'd', 'c', 'b', 'a']);
  });

  it('continues after an item removed since its cursor was handed out, instead of starting over', () => {
    const page1 = connectionOf(list, { first: 3 }, pos);
    expect(ids(page1)).toEqual(['f', 'e', 'd']);
    // 'd' (the cursor's item) and the oldest go; a newer item arrives.
    const later = [at(59, 'g'), ...list.filter((i) => i.id !== 'd' && i.id !== 'a')];
    const page2 = connectionOf(later, { first: 3, after: page1.pageInfo.endCursor }, pos);
    expect(ids(page2)).toEqual(['c', 'b']);
    expect(page2.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    // Every item older than the cursor's is gone: an empty last page, not the first page again.
    const page3 = connectionOf([at(59, 'g'), at(50, 'f')], { first: 3, after: page1.pageInfo.endCursor }, pos);
    expect(ids(page3)).toEqual([]);
    expect(page3.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true, endCursor: null });
  });

  it('refuses a negative page size instead of answering an empty page, and caps a large one', () => {
    expect(() => connectionOf(list, { first: -1 }, pos)).toThrow(/first: -1 is not a page size/);
    expect(ids(connectionOf(list, { first: 0 }, pos))).toEqual([]);
    const many = Array.from({ length: MAX_PAGE + 20 }, (_, n) => at(0, String(n).padStart(4, '0')));
    const page = connectionOf(many, { first: MAX_PAGE + 10 }, pos);
    expect(page.edges).toHaveLength(MAX_PAGE);
    expect(page.pageInfo.hasNextPage).toBe(true);
    expect(connectionOf(many, {}, pos).edges).toHaveLength(DEFAULT_PAGE);
  });

  it('refuses a cursor that is not one of its own', () => {
    for (const after of ['bm9wZQ', Buffer.from('"d"').toString('base64url'), Buffer.from('["x"]').toString('base64url'), Buffer.from('[1,2]').toString('base64url')]) {
      expect(() => connectionOf(list, { first: 2, after }, pos)).toThrow(ValidationError);
    }
  });
});
