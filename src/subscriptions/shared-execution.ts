// One execution per published event for all its subscribers that asked the same thing. graphql-js
// runs a subscription's selection set once per event per subscriber; 500 dashboards following one
// backup asked the same document with the same variables, so 499 of those 500 executions repeated
// the first. Here the first subscriber's result for an event is kept (weakly, by the event
// object) and handed to the others whose document, variables, operation name and role match.
import { createSourceEventStream, execute, type DocumentNode, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { isAsyncIterable } from 'graphql-yoga';

type Result = ExecutionResult | Promise<ExecutionResult>;

const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 0;
const byEvent = new WeakMap<object, Map<string, Result>>();

/** What makes two subscribers' executions of one event the same. */
function keyOf(args: ExecutionArgs): string {
  let id = documentIds.get(args.document);
  if (id === undefined) documentIds.set(args.document, (id = nextDocumentId++));
  const role = (args.contextValue as { role?: unknown } | undefined)?.role;
  return `${id}\u0000${String(role)}\u0000${args.operationName ?? ''}\u0000${JSON.stringify(args.variableValues ?? null)}`;
}

/** graphql-js `subscribe`, with each event's execution shared (see above). */
export async function subscribeShared(args: ExecutionArgs): Promise<AsyncGenerator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return source;
  const key = keyOf(args);
  const run = (payload: unknown): Result => {
    if (typeof payload !== 'object' || payload === null) return execute({ ...args, rootValue: payload });
    let results = byEvent.get(payload);
    if (!results) byEvent.set(payload, (results = new Map()));
    let result = results.get(key);
    if (result === undefined) results.set(key, (result = execute({ ...args, rootValue: payload })));
    return result;
  };
  // A plain iterator, not an async generator: a generator waiting for the next event would hold
  // a client's return() (unsubscribe) until that event came.
  const it = source[Symbol.asyncIterator]();
  const mapped = async (r: IteratorResult<unknown>): Promise<IteratorResult<ExecutionResult>> =>
    (r.done ? { done: true, value: undefined } : { done: false, value: await run(r.value) });
  const iterator: AsyncGenerator<ExecutionResult> = {
    next: () => it.next().then(mapped),
    return: async () => (it.return ? mapped(await it.return()) : { done: true, value: undefined }),
    throw: async (err: unknown) => { if (it.throw) return mapped(await it.throw(err)); throw err; },
    [Symbol.asyncIterator]() { return this; },
  } as AsyncGenerator<ExecutionResult>;
  return iterator;
}
