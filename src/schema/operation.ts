// Operations: long jobs with progress, their queries, cancellation and live subscriptions.
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../errors.js';
import { OPERATION_KINDS, OPERATION_STATUSES, isOperationId, isTerminal, type OperationRecord } from '../engine/operations/index.js';
import { OPERATION_EVENT_TYPES, type OperationEvent } from '../subscriptions/events.js';
import { requireAdmin } from './errors.js';
import { InstanceRef } from './instance.js';
import { NodeInterface, decodeGlobalId, encodeGlobalId, nodeLoaders } from './node.js';
import { connectionOf, defineConnection, FIRST_DESCRIPTION } from './pagination.js';

export const OperationKindEnum = builder.enumType('OperationKind', { values: OPERATION_KINDS });
export const OperationStatusEnum = builder.enumType('OperationStatus', { values: OPERATION_STATUSES });
/** Operation.log: lines unless `last` is given, and at most. */
const LOG_LINES = 100;
const MAX_LOG_LINES = 1000;

const OperationEventTypeEnum = builder.enumType('OperationEventType', { values: OPERATION_EVENT_TYPES });

const OperationProgressRef = builder.objectRef<OperationRecord['progress']>('OperationProgress').implement({
  fields: (t) => ({
    phase: t.exposeString('phase'),
    percent: t.float({
      nullable: true,
      description: 'null while the total is unknown',
      resolve: (p) => (p.bytesTotal && p.bytesTotal > 0 ? Math.min(100, (p.bytesDone / p.bytesTotal) * 100) : null),
    }),
    bytesDone: t.field({ type: 'ByteCount', resolve: (p) => Math.max(0, Math.round(p.bytesDone)) }),
    bytesTotal: t.field({ type: 'ByteCount', nullable: true, description: 'an estimate while streaming', resolve: (p) => (p.bytesTotal === null ? null : Math.round(p.bytesTotal)) }),
    bytesPerSecond: t.exposeFloat('bytesPerSecond', { nullable: true }),
    etaSeconds: t.exposeFloat('etaSeconds', { nullable: true }),
    currentItem: t.exposeString('currentItem', { nullable: true }),
  }),
});

const OperationErrorRef = builder.objectRef<NonNullable<OperationRecord['error']>>('OperationError').implement({
  fields: (t) => ({
    code: t.exposeString('code'),
    message: t.exposeString('message'),
  }),
});

export const OperationRef = builder.objectRef<OperationRecord>('Operation');
OperationRef.implement({
  interfaces: [NodeInterface],
  isTypeOf: (v) => typeof v === 'object' && v !== null && 'kind' in v && 'status' in v && 'progress' in v,
  fields: (t) => ({
    id: t.id({ resolve: (o) => encodeGlobalId('Operation', o.id) }),
    operationId: t.exposeString('id', { description: 'The id of the record (instances/<n>/operations/<id>.json).' }),
    kind: t.field({ type: OperationKindEnum, resolve: (o) => o.kind }),
    status: t.field({ type: OperationStatusEnum, resolve: (o) => o.status }),
    instanceName: t.exposeString('instanceName'),
    appName: t.exposeString('appName', { nullable: true }),
    progress: t.field({ type: OperationProgressRef, resolve: (o) => o.progress }),
    message: t.exposeString('message', { nullable: true }),
    error: t.field({ type: OperationErrorRef, nullable: true, resolve: (o) => o.error }),
    createdAt: t.field({ type: 'DateTime', resolve: (o) => o.createdAt }),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (o) => o.startedAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (o) => o.finishedAt }),
    updatedAt: t.field({
      type: 'DateTime',
      description: 'When this state was published: over a subscription, the time of the event that carried it.',
      resolve: (o) => o.updatedAt ?? o.finishedAt ?? o.startedAt ?? o.createdAt,
    }),
    backupId: t.exposeString('backupId', { nullable: true, description: 'The backup made or restored (restic tag backup:<id>).' }),
    recoveryPending: t.boolean({
      description: 'The operation has finished but its undo has not (a failed restore whose rollback the cluster did not let finish, error code ROLLBACK_INCOMPLETE): Wild Backup tries it again in the background, and the app takes no other operation until it is done.',
      resolve: (o) => isTerminal(o.status) && o.recovery !== null,
    }),
    log: t.stringList({
      description: 'The last lines of the operation\'s log, oldest first.',
      args: { last: t.arg.int({ required: false, description: `Lines: ${LOG_LINES} unless given, at most ${MAX_LOG_LINES}; 0 answers none. A negative number is refused.` }) },
      resolve: async (o, { last }, ctx) => {
        if (last != null && last < 0) throw new ValidationError(`last: ${last} is not a number of lines (give 0 or more; at most ${MAX_LOG_LINES} are returned)`, [{ path: 'last', message: 'must be 0 or more' }]);
        const n = Math.min(last ?? LOG_LINES, MAX_LOG_LINES);
        return n === 0 ? [] : ctx.services.engine.logTail(o.id, n);
      },
    }),
  }),
});

/** Accepts an Operation's global ID or its record id. */
export function operationIdFrom(id: string): string | null {
  const decoded = decodeGlobalId(id);
  if (decoded?.type === 'Operation') return decoded.key;
  return isOperationId(id) ? id : null;
}

function findOperation(ctx: GraphQLContext, id: string): OperationRecord | null {
  const opId = operationIdFrom(id);
  return opId ? ctx.services.engine.get(opId) ?? null : null;
}

nodeLoaders.set('Operation', async (key, ctx) => ctx.services.engine.get(key) ?? null);

const OperationConnectionRef = defineConnection('Operation', OperationRef);

builder.queryFields((t) => ({
  operation: t.field({
    type: OperationRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, { id }, ctx) => findOperation(ctx, String(id)),
  }),
  operations: t.field({
    type: OperationConnectionRef,
    args: {
      instance: t.arg.string({ required: false }),
      status: t.arg({ type: [OperationStatusEnum], required: false }),
      first: t.arg.int({ required: false, description: FIRST_DESCRIPTION }),
      after: t.arg.string({ required: false }),
    },
    resolve: (_r, args, ctx) =>
      connectionOf(ctx.services.engine.list({ instance: args.instance, status: args.status }), args, (o) => [o.createdAt, o.id]),
  }),
}));

builder.objectField(InstanceRef, 'operations', (t) =>
  t.field({
    type: OperationConnectionRef,
    args: {
      status: t.arg({ type: [OperationStatusEnum], required: false }),
      first: t.arg.int({ required: false, description: FIRST_DESCRIPTION }),
      after: t.arg.string({ required: false }),
    },
    resolve: (i, args, ctx) => connectionOf(ctx.services.engine.list({ instance: i.name, status: args.status }), args, (o) => [o.createdAt, o.id]),
  }),
);

const CancelOperationPayloadRef = builder.objectRef<{ operation: OperationRecord }>('CancelOperationPayload').implement({
  fields: (t) => ({ operation: t.field({ type: OperationRef, resolve: (p) => p.operation }) }),
});

builder.mutationField('cancelOperation', (t) =>
  t.field({
    type: CancelOperationPayloadRef,
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError, ConflictError, ForbiddenError], directResult: true, union: { name: 'CancelOperationResult' } },
    resolve: async (_r, { id }, ctx) => {
      requireAdmin(ctx.role);
      const rec = findOperation(ctx, String(id));
      if (!rec) throw new NotFoundError(`no operation with id "${String(id).slice(0, 80)}"`);
      return { operation: await ctx.services.engine.cancel(rec.id) };
    },
  }),
);

const OperationEventRef = builder.objectRef<OperationEvent>('OperationEvent').implement({
  fields: (t) => ({
    type: t.field({ type: OperationEventTypeEnum, resolve: (e) => e.type }),
    operation: t.field({ type: OperationRef, resolve: (e) => e.operation }),
  }),
});

type Step<U> = { value: U; last?: boolean } | null;

/**
 * `first` (if given), then `source`'s values as `step` maps them (null: skipped; last: the end
 * follows). A plain iterator, not an async generator: a generator waiting for its next event holds
 * a client's return() (unsubscribe), and the subscription with it, until that event comes; this
 * one ends `source` at once.
 */
function follow<T, U>(source: AsyncIterableIterator<T>, step: (v: T) => Step<U>, first: Step<U> = null): AsyncIterableIterator<U> {
  let ended = false;
  let endNext = false;
  let pending = first;
  const end = async (): Promise<IteratorResult<U>> => {
    if (!ended) {
      ended = true;
      await source.return?.();
    }
    return { done: true, value: undefined };
  };
  const it: AsyncIterableIterator<U> = {
    async next() {
      for (;;) {
        if (ended || endNext) return end();
        let out = pending;
        pending = null;
        if (!out) {
          const r = await source.next();
          if (r.done) return end();
          out = step(r.value);
        }
        if (!out) continue;
        endNext = out.last ?? false; // the end comes at the next call, once the client has this value
        return { done: false, value: out.value };
      }
    },
    return: end,
    async throw(err: unknown) {
      await end();
      throw err;
    },
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}

/** The operation's current state first, then every change; ends after its terminal state. */
function followOperation(ctx: GraphQLContext, opId: string): AsyncIterableIterator<OperationRecord> {
  const { engine, pubsub } = ctx.services;
  const events = pubsub.subscribe(`operation:${opId}`); // before reading the state: nothing missed
  const current = engine.published(opId);
  if (!current) {
    void events.return?.();
    throw new NotFoundError(`no operation with id "${opId}"`);
  }
  return follow(
    events,
    // The event that made `current` (published for us) is not sent twice.
    (ev) => (ev.operation === current ? null : { value: ev.operation, last: isTerminal(ev.operation.status) }),
    { value: current, last: isTerminal(current.status) },
  );
}

builder.subscriptionFields((t) => ({
  operation: t.field({
    type: OperationRef,
    description: "The operation's current state first, then every change; completes after its terminal state.",
    args: { id: t.arg.id({ required: true }) },
    subscribe: (_r, { id }, ctx) => {
      const opId = operationIdFrom(String(id));
      if (!opId || !ctx.services.engine.get(opId)) throw new NotFoundError(`no operation with id "${String(id).slice(0, 80)}"`);
      return followOperation(ctx, opId);
    },
    resolve: (rec) => rec,
  }),
  operationEvents: t.field({
    type: OperationEventRef,
    description: 'Every operation event, optionally of one instance.',
    args: { instance: t.arg.string({ required: false }) },
    subscribe: (_r, { instance }, ctx) =>
      follow(ctx.services.pubsub.subscribe('operations'), (ev) => (!instance || ev.operation.instanceName === instance ? { value: ev } : null)),
    resolve: (ev) => ev,
  }),
}));
