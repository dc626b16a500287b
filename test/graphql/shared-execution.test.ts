// Subscribers that asked the same thing share one execution per event; any difference (variables,
// role, document) gets its own. The payload counts how often a field of it is read.
import { buildSchema, parse, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { PubSub } from '../../src/subscriptions/pubsub.js';
import { subscribeShared } from '../../src/subscriptions/shared-execution.js';

const schema = buildSchema(`
  type Query { ok: Boolean }
  type Tick { n(times: Int): Int }
  type Subscription { tick: Tick }
`);

describe('shared execution of subscription events', () => {
  it('runs an event once for every subscriber with the same document, variables and role', async () => {
    const pubsub = new PubSub<{ ticks: { tick: { n: (a: { times?: number }) => number } } }>();
    let reads = 0;
    const rootValue = { tick: () => pubsub.subscribe('ticks') };
    const doc = parse('subscription($t: Int) { tick { n(times: $t) } }');
    const start = (variableValues: Record<string, unknown>, role: string) =>
      subscribeShared({ schema, document: doc, rootValue, variableValues, contextValue: { role } }) as Promise<AsyncGenerator<ExecutionResult>>;
    const same = await Promise.all(Array.from({ length: 50 }, () => start({ t: 2 }, 'readonly')));
    const otherVariables = await start({ t: 3 }, 'readonly');
    const otherRole = await start({ t: 2 }, 'admin');
    const all = [...same, otherVariables, otherRole];
    const firsts = all.map((s) => s.next());
    pubsub.publish('ticks', { tick: { n: ({ times }) => { reads++; return 7 * (times ?? 1); } } });
    const got = await Promise.all(firsts);
    expect(got.map((r) => r.value?.data)).toEqual([...Array(50).fill({ tick: { n: 14 } }), { tick: { n: 21 } }, { tick: { n: 14 } }]);
    expect(reads).toBe(3); // 50 alike, 1 with other variables, 1 with another role
    // A second event is executed again (results are kept per event).
    const seconds = all.map((s) => s.next());
    pubsub.publish('ticks', { tick: { n: () => { reads++; return 1; } } });
    await Promise.all(seconds);
    expect(reads).toBe(6);
    // Unsubscribing while waiting for an event ends the subscription at once.
    const waiting = same[0]!.next();
    await same[0]!.return(undefined);
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(pubsub.subscriberCount('ticks')).toBe(all.length - 1);
    for (const s of all.slice(1)) await s.return(undefined);
    expect(pubsub.subscriberCount('ticks')).toBe(0);
  });
});
