// The event vocabulary of the server's pubsub.
import type { OperationRecord } from '../engine/operations/types.js';

export const OPERATION_EVENT_TYPES = ['CREATED', 'UPDATED', 'FINISHED'] as const;
export type OperationEventType = (typeof OPERATION_EVENT_TYPES)[number];

export interface OperationEvent {
  type: OperationEventType;
  operation: OperationRecord;
}

export type OperationTopics = {
  operations: OperationEvent;
} & {
  [K in `operation:${string}`]: OperationEvent;
};
