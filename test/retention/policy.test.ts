// applyRetentionPolicy on small hand-made histories: the cases a user reads in a preview.
import { describe, expect, it } from 'vitest';
import { applyRetentionPolicy, readInstant } from '../../src/engine/retention/index.js';

const at = (id: string, time: string) => ({ id, time });
const ids = (list: { id: string }[]) => list.map((i) => i.id);

describe('applyRetentionPolicy', () => {
  it('keeps everything under an empty policy, newest first', () => {
    const items = [at('a', '2021-01-01T00:00:00Z'), at('b', '2021-01-02T00:00:00Z')];
    const r = applyRetentionPolicy(items, { keepDaily: 0 });
    expect(ids(r.keep)).toEqual(['b', 'a']);
    expect(r.remove).toEqual([]);
    expect(r.reasons.get('a')).toEqual(['policy is empty']);
  });

  it('keeps the newest of each of the n most recent days, and lists every matching rule', () => {
    const items = [
      at('d1-early', '2021-05-01T08:00:00Z'),
      at('d1-late', '2021-05-01T20:00:00Z'),
      at('d2', '2021-05-02T10:00:00Z'),
      at('d3-early', '2021-05-03T01:00:00Z'),
      at('d3-late', '2021-05-03T23:00:00Z'),
    ];
    const r = applyRetentionPolicy(items, { keepLast: 1, keepDaily: 2 });
    expect(ids(r.keep)).toEqual(['d3-late', 'd2']);
    expect(r.reasons.get('d3-late')).toEqual(['last snapshot', 'daily snapshot']);
    expect(r.reasons.get('d2')).toEqual(['daily snapshot']);
    expect(ids(r.remove)).toEqual(['d3-early', 'd1-late', 'd1-early']);
  });

  it('uses ISO weeks: 2021-01-03 belongs to week 53 of 2020', () => {
    const items = [
      at('mon-w1', '2021-01-04T09:00:00Z'),
      at('sun-w53', '2021-01-03T09:00:00Z'),
      at('fri-w53', '2021-01-01T09:00:00Z'),
      at('mon-w53', '2020-12-28T09:00:00Z'),
      at('sun-w52', '2020-12-27T09:00:00Z'),
    ];
    expect(ids(applyRetentionPolicy(items, { keepWeekly: 3 }).keep)).toEqual(['mon-w1', 'sun-w53', 'sun-w52']);
    expect(ids(applyRetentionPolicy(items, { keepYearly: 2 }).keep)).toEqual(['mon-w1', 'mon-w53']);
  });

  it('computes buckets in the offset a time was recorded in; a Date counts as UTC', () => {
    // 23:30 UTC on May 1st is already May 2nd in Berlin (+02:00).
    expect(readInstant('2021-05-02T01:30:00+02:00')).toMatchObject({ year: 2021, month: 5, day: 2, hour: 1 });
    expect(readInstant(new Date('2021-05-01T23:30:00Z'))).toMatchObject({ day: 1, hour: 23 });
    const items = [at('berlin', '2021-05-02T01:30:00+02:00'), at('utc', '2021-05-01T22:00:00Z')];
    expect(ids(applyRetentionPolicy(items, { keepDaily: 2 }).keep)).toEqual(['berlin', 'utc']);
  });

  it('counts a bucket again when it reappears after another one, as restic does', () => {
    const items = [
      at('utc-late', '2021-06-09T23:00:00Z'), // day 06-09
      at('berlin', '2021-06-10T00:30:00+02:00'), // 22:30Z, but day 06-10
      at('utc-early', '2021-06-09T20:00:00Z'), // day 06-09 again
    ];
    expect(ids(applyRetentionPolicy(items, { keepDaily: 3 }).keep)).toEqual(['utc-late', 'berlin', 'utc-early']);
  });

  it('orders by the nanoseconds restic prints and keeps input order for equal times', () => {
    const items = [
      at('first', '2021-01-01T00:00:00.000000001Z'),
      at('second', '2021-01-01T00:00:00.000000002Z'),
      at('tie-a', '2020-01-01T00:00:00Z'),
      at('tie-b', '2020-01-01T00:00:00Z'),
    ];
    expect(ids(applyRetentionPolicy(items, { keepLast: 1 }).keep)).toEqual(['second']);
    expect(ids(applyRetentionPolicy(items, { keepYearly: 2 }).keep)).toEqual(['second', 'tie-a']);
  });

  it('rejects negative or fractional counts, invalid times and duplicate ids', () => {
    const items = [at('a', '2021-01-01T00:00:00Z')];
    expect(() => applyRetentionPolicy(items, { keepLast: -1 })).toThrow(/keepLast/);
    expect(() => applyRetentionPolicy(items, { keepDaily: 1.5 })).toThrow(/keepDaily/);
    expect(() => applyRetentionPolicy([at('a', '2021-02-30T00:00:00Z')], { keepLast: 1 })).toThrow(RangeError);
    expect(() => applyRetentionPolicy([at('a', '2021-01-01 00:00:00')], { keepLast: 1 })).toThrow(/offset/);
    expect(() => applyRetentionPolicy([...items, ...items], { keepLast: 1 })).toThrow(/duplicate/);
  });
});
